"""The speed gate: streamed measurements against two real HTTP servers on 127.0.0.1 (the
fake OpenAI server; the real-vLLM run belongs to the evaluation stage), and the decision."""
from __future__ import annotations

import pytest

from policies.schema import QualityGate
from quantize.speed import LevelStats, SpeedComparison, check_speed, default_prompts, speed_gate
from tests.support.fake_openai import FakeOpenAI

REPLY = "one two three four five six"   # six streamed chunks
POLICY = dict(speed_concurrency=[1, 4], speed_requests_per_level=8, speed_max_tokens=6)


@pytest.fixture
def servers():
    started = []

    def start(**kw) -> FakeOpenAI:
        started.append(FakeOpenAI(REPLY, **kw).start())
        return started[-1]
    yield start
    for server in started:
        server.stop()


def test_same_speed_passes_with_the_table(servers) -> None:
    parent, build = servers(delay_s=0.02, chunk_delay_s=0.01), servers(delay_s=0.02, chunk_delay_s=0.01)
    # equal servers; the slack absorbs scheduling noise of a loaded 2-core machine (the failing case is 150 ms)
    verdict = speed_gate(parent.url, build.url, "m", ["hi", "there"],
                         QualityGate(**POLICY, latency_slack_ms=50, min_throughput_ratio=0.5))
    assert verdict.passed and verdict.action == "proceed", verdict.reason
    assert "| 4 | build |" in verdict.reason and "0/8 |" in verdict.reason
    body = build.bodies[-1]
    assert body["stream"] and body["max_tokens"] == 6 and body["ignore_eos"] and body["model"] == "m"
    assert parent.calls == build.calls == 1 + 2 * 8          # a warm-up, then 8 per level
    c4 = verdict.comparison.build[1]
    assert c4.concurrency == 4 and 9 <= c4.itl_p50_ms < 200     # chunks are 10 ms apart, never less
    assert c4.output_tokens_per_s > 6 * 8 / 5                 # 6 tokens per request, chunks counted


def test_slower_build_fails_with_the_table_in_the_reason(servers) -> None:
    parent, build = servers(chunk_delay_s=0.005), servers(chunk_delay_s=0.005, delay_s=0.15)
    verdict = speed_gate(parent.url, build.url, "m", ["hi"], QualityGate(**POLICY))
    assert not verdict.passed and verdict.action == "fail"
    assert "speed gate failed (c=1: ttft_p50_ms" in verdict.reason and "throughput ratio" in verdict.reason
    assert "| conc | side | TTFT p50 / p99 ms" in verdict.reason and "| 1 | parent |" in verdict.reason
    assert verdict.comparison.build[0].ttft_p50_ms > 150


def test_policy_may_deploy_full_precision_instead(servers) -> None:
    parent, build = servers(), servers(status=500)
    verdict = speed_gate(parent.url, build.url, "m", ["hi"], QualityGate(**POLICY, on_slower="deploy_full_precision"))
    assert not verdict.passed and verdict.action == "deploy_full_precision"
    assert "c=1: 0 parent and 8 build requests failed" in verdict.reason


def _row(c: int, ttft: float = 100.0, itl: float = 20, tps: float = 500, errors: int = 0) -> LevelStats:
    return LevelStats(c, 64, errors, ttft, ttft * 2, itl, itl * 2, tps)


@pytest.mark.parametrize("build, expected", [
    (_row(32, ttft=124), []),
    (_row(32, ttft=130), ["c=32: ttft_p50_ms 100.0 -> 130.0 (+30% > 25%)", "c=32: ttft_p99_ms 200.0 -> 260.0"]),
    (_row(32, itl=30), ["c=32: itl_p50_ms 20.0 -> 30.0 (+50% > 25%)", "c=32: itl_p99_ms"]),
    (_row(32, tps=390), ["c=32: throughput ratio 0.78 < 0.8"]),
    (_row(32, tps=400), []),
])
def test_limits_per_figure(build: LevelStats, expected: list[str]) -> None:
    verdict = check_speed(SpeedComparison((_row(32),), (build,)), QualityGate())
    assert verdict.passed is (not expected)
    for text in expected:
        assert text in verdict.reason


def test_increases_under_the_slack_never_count() -> None:
    parent, build = _row(1, ttft=0.1, itl=0.3), _row(1, ttft=0.2, itl=0.6)   # +100 % each, all under 1 ms
    assert check_speed(SpeedComparison((parent,), (build,)), QualityGate()).passed
    assert not check_speed(SpeedComparison((parent,), (build,)), QualityGate(latency_slack_ms=0)).passed


def test_policy_levels_are_checked() -> None:
    assert QualityGate().speed_concurrency == [1, 8, 32]
    with pytest.raises(ValueError, match="speed_concurrency"):
        QualityGate(speed_concurrency=[0, 8])


def test_metrics_and_default_prompts() -> None:
    cmp = SpeedComparison((_row(1),), (_row(1, tps=450),))
    assert cmp.metrics()["speed.build.c1.output_tokens_per_s"] == 450
    assert len(default_prompts()) == 121 and default_prompts()[0] == "What is the capital of France?"
