"""The rollout policy: what a release must pass and how fast it moves.

Loaded from YAML and validated by pydantic; unknown keys are errors so a typo never
silently falls back to a default.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policies.analysis import AnalysisPolicy
from policies.durations import MAX_DURATION_SECONDS, duration
from policies.evaluation import EvaluationPolicy
from policies.kubernetes import KubernetesPolicy


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
                                    "mlflow-dataset:RUN_ID/NAME or an MLflow artifact URI (runs:/...); "
                                    "built-in when empty")
    max_calib_samples: int = Field(64, ge=1)
    max_calib_seq_len: int = Field(256, ge=16)
    timeout_seconds: int = Field(1800, ge=10, le=MAX_DURATION_SECONDS, strict=True)
    max_memory_gb: float = Field(16, gt=0)


class QualityGate(_Strict):
    max_perplexity_increase_pct: float = Field(5.0, ge=0)
    max_accuracy_drop_pct: float = Field(1.2, ge=0, description="accuracy points the build may lose")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="one-sided confidence of each bound on the "
                              "paired accuracy drop: a build passes only when the upper bound is under the limit")
    on_inconclusive: Literal["fail", "pass"] = Field(
        "fail", description="when the interval contains the limit (not enough items to decide)")
    suite: str = Field("builtin:large", min_length=1, description="evaluation suite: builtin:large (generated, "
                       "6,044 items), builtin:medium (2,000 of them), builtin:small (121 items, fast, "
                       "rarely decisive) or a JSONL path")
    evaluate_on: Literal["auto", "cpu", "pool"] = Field(
        "auto", description="where the build is measured: cpu (weights dequantized in the controller), "
                            "pool (vLLM on the release's pool serves parent and build), auto (pool when it "
                            "can serve the build's format, else cpu)")
    speed_concurrency: list[int] = Field(default_factory=lambda: [1, 8, 32],
                                         description="concurrency levels of the speed gate")
    speed_requests_per_level: int = Field(64, ge=1, description="streamed requests per side and level")
    speed_max_tokens: int = Field(64, ge=1, description="output tokens asked per speed-gate request")
    max_latency_increase_pct: float = Field(
        25.0, ge=0, description="largest allowed increase of TTFT and inter-token latency p50/p99 over the parent")
    latency_slack_ms: float = Field(1.0, ge=0, description="latency increases smaller than this never count "
                                    "(timer and network noise on sub-millisecond figures)")
    min_throughput_ratio: float = Field(0.8, ge=0, description="build output tokens/s over the parent's, at least")
    on_slower: Literal["fail", "deploy_full_precision"] = Field(
        "fail", description="when the build is slower than allowed: fail the release, or deploy the "
                            "full-precision candidate and record why")

    @field_validator("speed_concurrency")
    @classmethod
    def _levels(cls, levels: list[int]) -> list[int]:
        if not levels or any(c < 1 for c in levels) or len(set(levels)) != len(levels):
            raise ValueError("speed_concurrency: distinct positive concurrency levels, at least one")
        return sorted(levels)

    @field_validator("suite")
    @classmethod
    def _known_builtin(cls, suite: str) -> str:
        from quantize.suites import BUILTIN
        if suite.startswith("builtin:") and suite not in BUILTIN:
            raise ValueError(f"unknown built-in suite {suite!r}; known: {', '.join(sorted(BUILTIN))}")
        return suite


class ShadowPolicy(_Strict):
    duration_seconds: float = duration(30, allow_zero=True, description="0 skips shadow")
    mirror_percent: float = Field(100, gt=0, le=100)


class CanaryPolicy(_Strict):
    steps: list[float] = Field(default_factory=lambda: [5, 25, 50], description="candidate weight (%) per step")
    step_seconds: float = duration(30, description="minimum soak per step")

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
    deploy_timeout_seconds: float = duration(600)
    quantize: QuantizePolicy = QuantizePolicy()
    quality: QualityGate = QualityGate()
    shadow: ShadowPolicy = ShadowPolicy()
    canary: CanaryPolicy = CanaryPolicy()
    analysis: AnalysisPolicy = AnalysisPolicy()
    kubernetes: KubernetesPolicy = KubernetesPolicy()   # pools on Kubernetes: autoscaling, PDB, hot standby
    evaluation: EvaluationPolicy = EvaluationPolicy()   # scheduled evaluations of the live champion
    validators: list[dict] = Field(
        default_factory=list,
        description="output validators run by the gateway on every answer: "
                    "{type: regex, pattern, must_match} or {type: json_schema, schema | required}")

    @field_validator("validators")
    @classmethod
    def _compilable(cls, specs: list[dict]) -> list[dict]:
        from policies.validators import ValidatorConfigError, compile_validators
        try:
            compile_validators(specs)
        except ValidatorConfigError as exc:
            raise ValueError(str(exc)) from None
        return specs
