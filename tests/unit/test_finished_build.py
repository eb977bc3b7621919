"""A build finished before a controller restart is reused only when it is exactly that build."""
from __future__ import annotations

from pathlib import Path

import pytest

from controller.reconcile import finished_build
from quantize.base import QuantizeResult, QuantizeSpec
from quantize.job import QuantizeJobResult

SPEC = QuantizeSpec(group_size=64, max_calib_samples=32)


def _build(tmp_path: Path) -> tuple[Path, QuantizeJobResult]:
    out = tmp_path / "builds" / "rel-1"
    out.mkdir(parents=True)
    (out / "config.json").write_text('{"quantization_config": {"quant_method": "awq"}}')
    (out / "model.safetensors").write_bytes(b"\x01" * 4096)
    result = QuantizeResult(build_dir=out, backend="autoawq", spec=SPEC, quant_method="awq", layers=4, seconds=12.5)
    return out, QuantizeJobResult(result=result, log_text="layer 4/4", seconds=13.0, peak_memory_mb=900.0)


def test_a_recorded_build_is_reused_with_its_figures(tmp_path):
    out, job = _build(tmp_path)
    finished_build.record(out, "2", job)
    again = finished_build.reuse(out, "2", SPEC)
    assert again is not None
    assert (again.result, again.seconds, again.peak_memory_mb, again.log_text) == \
        (job.result, 13.0, 900.0, "layer 4/4")


@pytest.mark.parametrize("change", ["file changed", "file missing", "file added", "other parent", "other spec",
                                    "no record", "record torn"])
def test_anything_else_is_built_again(tmp_path, change):
    out, job = _build(tmp_path)
    finished_build.record(out, "2", job)
    parent, spec = "2", SPEC
    if change == "file changed":
        (out / "model.safetensors").write_bytes(b"\x02" * 4096)
    elif change == "file missing":
        (out / "model.safetensors").unlink()
    elif change == "file added":
        (out / "extra.safetensors").write_bytes(b"\x03")
    elif change == "other parent":
        parent = "3"
    elif change == "other spec":
        spec = QuantizeSpec(group_size=128, max_calib_samples=32)
    elif change == "no record":
        finished_build.forget(out)
    elif change == "record torn":
        path = finished_build.record_path(out)
        path.write_text(path.read_text()[:40])
    assert finished_build.reuse(out, parent, spec) is None
