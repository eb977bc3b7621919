"""QuantizeSpec validation, the backend registry and the policy mapping."""
from __future__ import annotations

import pytest

from policies.schema import QuantizePolicy
from quantize.base import BACKENDS_ENV, QuantizeSpec, get_backend, known_backends, spec_from_policy
from quantize.errors import QuantizeError


def test_spec_round_trips_through_dict() -> None:
    spec = QuantizeSpec(bits=4, group_size=64, zero_point=False, kernel="GEMV", calibration="/x.txt")
    assert QuantizeSpec.from_dict(spec.to_dict()) == spec
    assert spec.label() == "awq-w4-g64-sym-GEMV"


@pytest.mark.parametrize("kwargs, text", [
    ({"bits": 1}, "bits must be between 2 and 8"),
    ({"group_size": 4}, "group_size must be >= 8"),
    ({"max_calib_samples": 0}, "max_calib_samples"),
])
def test_bad_spec_values_are_rejected(kwargs: dict, text: str) -> None:
    with pytest.raises(QuantizeError, match=text):
        QuantizeSpec(**kwargs)


def test_unknown_spec_field_is_named() -> None:
    with pytest.raises(QuantizeError, match="group_sise"):
        QuantizeSpec.from_dict({"group_sise": 128})


def test_spec_from_policy_copies_every_field() -> None:
    policy = QuantizePolicy(bits=4, group_size=64, zero_point=False, kernel="GEMV", calibration="c.jsonl",
                            max_calib_samples=8, max_calib_seq_len=32)
    assert spec_from_policy(policy) == QuantizeSpec(4, 64, False, "GEMV", "c.jsonl", 8, 32)


def test_unknown_backend_lists_known_names() -> None:
    with pytest.raises(QuantizeError, match="unknown quantize backend 'gptq'; known: autoawq, llmcompressor"):
        get_backend("gptq")


def test_extra_backend_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKENDS_ENV, "mine=quantize.autoawq_backend:AutoAWQQuantizer")
    assert "mine" in known_backends()
    assert get_backend("mine").name == "autoawq"
    monkeypatch.setenv(BACKENDS_ENV, "broken")
    with pytest.raises(QuantizeError, match="expected name=module:Class"):
        known_backends()


def test_autoawq_rejects_what_it_cannot_pack() -> None:
    backend = get_backend("autoawq")
    with pytest.raises(QuantizeError, match="unsupported architecture 'bert'"):
        backend.check({"model_type": "bert"}, QuantizeSpec())
    with pytest.raises(QuantizeError, match="4-bit weights only, got bits=8"):
        backend.check({"model_type": "llama"}, QuantizeSpec(bits=8))
    with pytest.raises(QuantizeError, match="unknown AutoAWQ kernel 'Marlin'"):
        backend.check({"model_type": "llama"}, QuantizeSpec(kernel="Marlin"))
    backend.check({"model_type": "llama"}, QuantizeSpec())


def test_llmcompressor_missing_is_a_clear_error(tmp_path, monkeypatch) -> None:
    # its worker's interpreter (RELCTL_QUANTIZE_PYTHON_LLMCOMPRESSOR) is probed: point it at nothing
    monkeypatch.setenv("RELCTL_QUANTIZE_PYTHON_LLMCOMPRESSOR", str(tmp_path / "no-env" / "python"))
    with pytest.raises(QuantizeError, match="'llmcompressor' is not installed for .*no-env"):
        get_backend("llmcompressor").check({"model_type": "llama"}, QuantizeSpec())
