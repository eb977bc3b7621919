"""Progress of the quality evaluation and the speed gate: what the callbacks report, and that
counting it changes no result (the answers' batches stay those of one call for all items)."""
from __future__ import annotations

import pytest

from policies.schema import QualityGate
from quantize import report
from quantize.report import _counter, _scores, correct
from quantize.speed import speed_gate
from quantize.suites import Suite, SuiteItem
from tests.support.fake_openai import FakeOpenAI


class Batching:
    """Answers like TorchScorer batches: prompts sorted by length, `size` at a time; records the batches."""

    def __init__(self, size: int):
        self.size, self.batches = size, []

    def answers(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), self.size):
            self.batches.append([prompts[i] for i in order[start:start + self.size]])
        return [" " + p.split()[-1] for p in prompts]

    def window_nll(self, window: list[int]) -> float:
        return float(len(window))


def items(n: int) -> tuple[SuiteItem, ...]:
    """Prompts of mixed lengths; every third one is answered wrong."""
    words = [f"w{i}" + "x" * (i * 7 % 5) for i in range(n)]
    return tuple(SuiteItem(f"say {w}", (lambda out, want=(w if i % 3 else "no"): out.strip() == want), w)
                 for i, w in enumerate(words))


def test_chunks_are_counted_and_marks_keep_the_items_order(monkeypatch):
    monkeypatch.setattr(report, "ANSWER_CHUNK", 4)
    done = []
    marks = correct(Batching(2), items(10), on_done=done.append)
    assert marks == [i % 3 != 0 for i in range(10)]
    assert done == [4, 4, 2]


def test_chunked_scoring_forms_the_batches_one_call_would(monkeypatch):
    monkeypatch.setattr(report, "ANSWER_CHUNK", 8)           # a multiple of the scorer's batch, as in the code
    whole, chunked = Batching(4), Batching(4)
    whole.answers([it.prompt for it in items(30)], 8)
    correct(chunked, items(30), on_done=lambda n: None)
    assert chunked.batches == whole.batches


def test_both_sides_count_windows_and_items_towards_one_total():
    seen = []
    suite = Suite("t", items(5))
    add = _counter(2 * (3 + 5), lambda done, total: seen.append((done, total)))
    for _ in ("parent", "build"):
        _scores(Batching(64), [[1, 2], [3, 4], [5, 6]], suite, add)
    assert seen[0] == (0, 16) and seen[-1] == (16, 16)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)    # never backwards
    assert (3, 16) in seen and (8, 16) in seen                  # parent's windows, then its items
    assert _counter(4, None) is None


@pytest.fixture
def servers():
    started = [FakeOpenAI("one two three", chunk_delay_s=0.0).start() for _ in range(2)]
    yield started
    for server in started:
        server.stop()


def test_the_speed_gate_reports_each_concurrency_level(servers):
    parent, build = servers
    seen = []
    verdict = speed_gate(parent.url, build.url, "m", ["hi"],
                         QualityGate(speed_concurrency=[4, 1], speed_requests_per_level=2, speed_max_tokens=3,
                                     latency_slack_ms=1e6, min_throughput_ratio=0.0),
                         on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 2), (1, 2), (2, 2)]
    assert [s.concurrency for s in verdict.comparison.build] == [1, 4]
