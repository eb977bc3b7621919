"""The policy's `kubernetes:` section: autoscaling bounds and the hot standby.

policies/schema.py's Policy holds it as `kubernetes: KubernetesPolicy = KubernetesPolicy()`.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AutoscalingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The reference vLLM deployment's setting: 70 % GPU utilisation, 3 to 20 replicas.
    target_gpu_utilization: float = Field(70, gt=0, le=100, description="percent, averaged over the pods")
    min_replicas: int = Field(3, ge=1)
    max_replicas: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> "AutoscalingPolicy":
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"autoscaling.max_replicas ({self.max_replicas}) is below "
                             f"min_replicas ({self.min_replicas})")
        return self


class KubernetesPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    autoscaling: AutoscalingPolicy = AutoscalingPolicy()
    max_unavailable: int = Field(1, ge=0, description="PodDisruptionBudget: pods a voluntary disruption may take")
    standby_seconds: float = Field(600, ge=0, description="after promotion the previous champion stays warm, "
                                   "out of rotation, this long: a rollback within it is a weight change")


def policy_section(policy) -> KubernetesPolicy:
    """The policy's kubernetes section, or the defaults where the policy has none."""
    section = getattr(policy, "kubernetes", None)
    return section if isinstance(section, KubernetesPolicy) else KubernetesPolicy()
