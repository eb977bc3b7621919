"""Every bad input of issue 4 fails before a process is spawned, with an error naming the cause."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantize.base import QuantizeSpec
from quantize.errors import QuantizeError
from quantize.job import run_quantize_job
from tests.support.tiny_models import write_untrained_checkpoint


def run(parent: Path, out: Path, spec: QuantizeSpec | None = None, backend: str = "autoawq") -> None:
    run_quantize_job(parent, out, spec or QuantizeSpec(), backend=backend, timeout_s=30, max_memory_gb=4)


@pytest.fixture()
def ckpt(tmp_path: Path) -> Path:
    return write_untrained_checkpoint(tmp_path / "parent")


def expect(cause: str, text: str, parent: Path, out: Path, **kw) -> None:
    with pytest.raises(QuantizeError, match=text) as info:
        run(parent, out, **kw)
    assert info.value.cause == cause
    assert not out.exists(), "no partial build may be left behind"


def test_missing_checkpoint(tmp_path: Path) -> None:
    expect("checkpoint", "checkpoint folder not found", tmp_path / "nope", tmp_path / "out")


def test_missing_config(ckpt: Path, tmp_path: Path) -> None:
    (ckpt / "config.json").unlink()
    expect("checkpoint", "has no config.json", ckpt, tmp_path / "out")


def test_corrupt_config(ckpt: Path, tmp_path: Path) -> None:
    (ckpt / "config.json").write_text("{not json")
    expect("checkpoint", "config.json is corrupt", ckpt, tmp_path / "out")


def test_missing_weights(ckpt: Path, tmp_path: Path) -> None:
    (ckpt / "model.safetensors").unlink()
    expect("checkpoint", "has no weight files", ckpt, tmp_path / "out")


def test_truncated_weights(ckpt: Path, tmp_path: Path) -> None:
    path = ckpt / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    expect("checkpoint", "model.safetensors is truncated", ckpt, tmp_path / "out")


def test_garbage_weights(ckpt: Path, tmp_path: Path) -> None:
    (ckpt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage-garbage!" + b"\0" * 64)
    expect("checkpoint", "is corrupt: unreadable header", ckpt, tmp_path / "out")


def test_unsupported_architecture(tmp_path: Path) -> None:
    parent = write_untrained_checkpoint(tmp_path / "bert", model_type="bert")
    expect("architecture", "unsupported architecture 'bert'", parent, tmp_path / "out")


def test_dims_not_divisible_by_group_size(tmp_path: Path) -> None:
    parent = write_untrained_checkpoint(tmp_path / "odd", hidden_size=192, intermediate_size=320)
    expect("group_size", r"not divisible by group size 128: hidden_size=192, intermediate_size=320", parent,
           tmp_path / "out")


def test_empty_calibration_file(ckpt: Path, tmp_path: Path) -> None:
    calib = tmp_path / "calib.txt"
    calib.write_text("\n\n   \n")
    expect("calibration", "calibration data is empty", ckpt, tmp_path / "out",
           spec=QuantizeSpec(calibration=str(calib)))


def test_missing_calibration_file(ckpt: Path, tmp_path: Path) -> None:
    expect("calibration", "calibration data not found", ckpt, tmp_path / "out",
           spec=QuantizeSpec(calibration=str(tmp_path / "none.jsonl")))


def test_bad_jsonl_calibration(ckpt: Path, tmp_path: Path) -> None:
    calib = tmp_path / "calib.jsonl"
    calib.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"body": "no text"}) + "\n")
    expect("calibration", "line 2: expected a string or an object with \"text\"", ckpt, tmp_path / "out",
           spec=QuantizeSpec(calibration=str(calib)))


def test_calibration_table_needs_a_text_column(ckpt: Path, tmp_path: Path) -> None:
    calib = tmp_path / "calib.csv"
    calib.write_text("prompt,label\nhello,1\n")
    expect("calibration", 'has no "text" column \\(columns: prompt, label\\)', ckpt, tmp_path / "out",
           spec=QuantizeSpec(calibration=str(calib)))


def test_calibration_table_texts_are_read(tmp_path: Path) -> None:
    from quantize.data_files import load_texts

    calib = tmp_path / "calib.csv"
    calib.write_text('text,n\n"first, with a comma",1\nsecond,2\n')
    assert load_texts(calib) == ["first, with a comma", "second"]


def test_unknown_backend(ckpt: Path, tmp_path: Path) -> None:
    expect("backend", "unknown quantize backend 'gptq'", ckpt, tmp_path / "out", backend="gptq")


def test_non_empty_output_folder(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(QuantizeError, match="exists and is not empty"):
        run(ckpt, out)
    assert (out / "keep.txt").read_text() == "user data"
