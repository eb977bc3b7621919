"""The job boundary: progress, timeout, memory guard, cancellation and crashes, with stand-in
backends (the worker process is real; only the quantization inside it is replaced)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from quantize.base import BACKENDS_ENV, QuantizeResult, QuantizeSpec
from quantize.errors import QuantizeError
from quantize.job import run_quantize_job
from tests.support.tiny_models import write_untrained_checkpoint

HERE = "tests.integration.test_quantize_job"


class _Base:
    name = "fake"

    def check(self, config, spec) -> None:
        pass


class QuickQuantizer(_Base):
    def quantize(self, parent_dir, out_dir, spec, texts, progress):
        for i in range(3):
            progress({"event": "layer_done", "stage": "awq", "layer": i, "total": 3})
        (Path(out_dir) / "config.json").write_text("{}")
        return QuantizeResult(Path(out_dir), "quick", spec, "awq", 3, 0.01)


class SleepyQuantizer(_Base):
    def quantize(self, parent_dir, out_dir, spec, texts, progress):
        (Path(out_dir) / "partial.bin").write_bytes(b"x")
        progress({"event": "layer_start", "stage": "awq", "layer": 0, "total": 1})
        time.sleep(120)


class HungryQuantizer(_Base):
    def quantize(self, parent_dir, out_dir, spec, texts, progress):
        hoard = []
        for _ in range(60):
            hoard.append(bytearray(100 * 2**20))  # touches 100 MiB per step
            time.sleep(0.05)
        time.sleep(120)


class CrashingQuantizer(_Base):
    def quantize(self, parent_dir, out_dir, spec, texts, progress):
        import os

        os._exit(9)  # dies without a word, as a segfaulting kernel would


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_untrained_checkpoint(tmp_path_factory.mktemp("job") / "parent")


@pytest.fixture(autouse=True)
def fake_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("quick", "sleepy", "hungry", "crashing")
    monkeypatch.setenv(BACKENDS_ENV, ",".join(f"{n}={HERE}:{n.capitalize()}Quantizer" for n in names))


def job(parent: Path, out: Path, backend: str, **kw):
    kw.setdefault("timeout_s", 60)
    kw.setdefault("max_memory_gb", 8)
    return run_quantize_job(parent, out, QuantizeSpec(), backend=backend, **kw)


def test_success_reports_progress_and_moves_build_into_place(parent: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    result = job(parent, tmp_path / "out", "quick", on_progress=events.append)
    assert [e["layer"] for e in events if e["event"] == "layer_done"] == [0, 1, 2]
    assert result.build_dir == tmp_path / "out" and (tmp_path / "out" / "config.json").is_file()
    assert result.peak_memory_mb > 10 and result.seconds > 0
    assert '"event": "done"' in result.log_text
    assert not list(tmp_path.glob(".out.partial-*"))


def test_timeout_kills_worker_and_leaves_nothing(parent: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(QuantizeError, match="timed out after 3 s") as info:
        job(parent, tmp_path / "out", "sleepy", timeout_s=3)
    assert info.value.cause == "timeout"
    assert time.monotonic() - started < 60
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def test_cancel_stops_the_job(parent: Path, tmp_path: Path) -> None:
    cancel = threading.Event()

    def on_progress(event: dict) -> None:
        if event["event"] == "layer_start":
            cancel.set()

    with pytest.raises(QuantizeError, match="cancelled") as info:
        job(parent, tmp_path / "out", "sleepy", cancel=cancel, on_progress=on_progress)
    assert info.value.cause == "cancelled"
    assert "layer_start" in info.value.log_text


def test_memory_guard(parent: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantizeError, match="exceeded the memory limit") as info:
        job(parent, tmp_path / "out", "hungry", max_memory_gb=1.5)
    assert info.value.cause == "memory"


def test_silent_crash_is_reported_with_exit_code(parent: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantizeError, match="crashed \\(exit code 9\\)") as info:
        job(parent, tmp_path / "out", "crashing")
    assert info.value.cause == "crash"
