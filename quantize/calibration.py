"""Calibration texts for a spec, checked to be long enough before quantization starts."""
from __future__ import annotations

from pathlib import Path

from quantize.base import QuantizeSpec
from quantize.data_files import default_calibration_path, load_texts
from quantize.errors import QuantizeError


def calibration_texts(spec: QuantizeSpec) -> list[str]:
    """The spec's file (text or JSONL), or the built-in calibration text; never empty."""
    return load_texts(Path(spec.calibration) if spec.calibration else default_calibration_path())


def check_calibration_tokens(texts: list[str], tokenizer, spec: QuantizeSpec) -> int:
    """AWQ concatenates up to max_calib_samples texts (each no longer than max_calib_seq_len
    tokens) and cuts blocks of max_calib_seq_len; with no full block it fails obscurely."""
    usable = 0
    taken = 0
    for text in texts:
        n = len(tokenizer.encode(text.strip()))
        if 0 < n <= spec.max_calib_seq_len:
            usable += n
            taken += 1
            if taken == spec.max_calib_samples:
                break
    blocks = usable // spec.max_calib_seq_len
    if blocks == 0:
        raise QuantizeError(f"calibration data too short: {usable} usable tokens in {taken} samples, need at least "
                            f"max_calib_seq_len={spec.max_calib_seq_len}", cause="calibration")
    return blocks
