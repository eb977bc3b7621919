"""The rollout policy: what a release must pass and how fast it moves.

Loaded from YAML and validated by pydantic; unknown keys are errors so a typo never
silently falls back to a default.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policies.analysis import AnalysisPolicy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuantizePolicy(_Strict):
    enabled: bool = True
    backend: str = Field("autoawq", description="autoawq | llmcompressor")
    bits: int = Field(4, ge=2, le=8)
    group_size: int = Field(128, ge=8)
    zero_point: bool = True
    kernel: str = Field("GEMM", description="AutoAWQ kernel version: GEMM | GEMV")
    calibration: str | None = Field(None, description="calibration texts: a .txt/.jsonl/.csv/.parquet file, "
                                    "mlflow-dataset:RUN_ID/NAME or an MLflow artifact URI (runs:/...); built-in when empty")
    max_calib_samples: int = Field(64, ge=1)
    max_calib_seq_len: int = Field(256, ge=16)
    timeout_seconds: int = Field(1800, ge=10)
    max_memory_gb: float = Field(16, gt=0)


class QualityGate(_Strict):
    max_perplexity_increase_pct: float = Field(5.0, ge=0)
    max_accuracy_drop_pct: float = Field(1.2, ge=0)
    evaluate_on: Literal["auto", "cpu", "pool"] = Field(
        "auto", description="where the build is measured: cpu (weights dequantized in the controller), "
                            "pool (vLLM on the release's pool serves parent and build), auto (pool when it "
                            "can serve the build's format, else cpu)")


class ShadowPolicy(_Strict):
    duration_seconds: float = Field(30, ge=0, description="0 skips shadow")
    mirror_percent: float = Field(100, gt=0, le=100)


class CanaryPolicy(_Strict):
    steps: list[float] = Field(default_factory=lambda: [5, 25, 50], description="candidate weight (%) per step")
    step_seconds: float = Field(30, gt=0, description="minimum soak per step")

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[float]) -> list[float]:
        if not steps:
            raise ValueError("at least one canary step is required")
        if any(not 0 < s < 100 for s in steps):
            raise ValueError("each canary step is a weight strictly between 0 and 100")
        if steps != sorted(steps) or len(set(steps)) != len(steps):
            raise ValueError("canary steps must strictly increase")
        return steps


class Policy(_Strict):
    name: str = "default"
    deploy_timeout_seconds: float = Field(600, gt=0)
    quantize: QuantizePolicy = QuantizePolicy()
    quality: QualityGate = QualityGate()
    shadow: ShadowPolicy = ShadowPolicy()
    canary: CanaryPolicy = CanaryPolicy()
    analysis: AnalysisPolicy = AnalysisPolicy()
    validators: list[dict] = Field(
        default_factory=list,
        description="output validators run by the gateway on every answer: "
                    "{type: regex, pattern, must_match} or {type: json_schema, schema | required}")

    @field_validator("validators")
    @classmethod
    def _compilable(cls, specs: list[dict]) -> list[dict]:
        from controller.gateway.validators import ValidatorConfigError, compile_validators
        try:
            compile_validators(specs)
        except ValidatorConfigError as exc:
            raise ValueError(str(exc)) from None
        return specs
