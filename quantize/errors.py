"""The one error type of the quantize stage: its message names the cause."""
from __future__ import annotations


class QuantizeError(Exception):
    """Quantization could not produce a usable build (bad input, timeout, memory, crash)."""

    def __init__(self, message: str, *, cause: str = "error") -> None:
        super().__init__(message)
        self.cause = cause  # short machine-readable kind, e.g. "timeout", "memory", "group_size"
        self.log_text = ""  # the job's log when the failure happened inside the worker
