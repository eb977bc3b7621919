"""Scheduled evaluations of the live champion: when they run, what they score, when they alarm.

A policy section `evaluation:` (policies.schema.Policy.evaluation). No `cron` and no
`interval_seconds` means the model is never evaluated on a schedule (a run can still be
started by hand with `relctl evals run`).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policies.durations import duration


class EvaluationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(None, description="5-field crontab in UTC, e.g. '0 3 * * *' (03:00 daily)")
    interval_seconds: float | None = duration(None, description="instead of cron: every N seconds (tests, demos)")
    suites: list[str] = Field(default_factory=lambda: ["builtin:small"], min_length=1,
                              description="evaluation suites (quantize/suites.py): builtin:NAME or a JSONL path")
    max_accuracy_drop_pct: float = Field(
        2.0, ge=0, description="accuracy points the champion may lose against its figures at promotion")
    max_compliance_drop_pct: float = Field(
        2.0, ge=0, description="points of answers passing the policy's output validators it may lose")
    misfire_grace_seconds: int = Field(
        3600, ge=1, description="a run missed (controller down) still runs this late; older ones are skipped")
    timeout_seconds: float = duration(
        1800, le=24 * 3600, description="a run still going after this is stopped")
    parallel: int = Field(4, ge=1, le=64, description="requests in flight to the gateway")

    @field_validator("cron")
    @classmethod
    def _crontab(cls, cron: str | None) -> str | None:
        if cron is None:
            return None
        from apscheduler.triggers.cron import CronTrigger
        try:
            CronTrigger.from_crontab(cron, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a 5-field crontab ({exc}): {cron!r}") from None
        return cron

    @field_validator("suites")
    @classmethod
    def _known_builtin(cls, suites: list[str]) -> list[str]:
        from quantize.suites import BUILTIN
        for suite in suites:
            if not suite.strip():
                raise ValueError("a suite name must not be empty")
            if suite.startswith("builtin:") and suite not in BUILTIN:
                raise ValueError(f"unknown built-in suite {suite!r}; known: {', '.join(sorted(BUILTIN))}")
        return suites

    @model_validator(mode="after")
    def _one_schedule(self) -> "EvaluationPolicy":
        if self.cron is not None and self.interval_seconds is not None:
            raise ValueError("give either cron or interval_seconds, not both")
        return self

    @property
    def scheduled(self) -> bool:
        return self.cron is not None or self.interval_seconds is not None

    def trigger(self):
        """The APScheduler trigger (UTC); None when the model is not evaluated on a schedule."""
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger
        if self.cron is not None:
            return CronTrigger.from_crontab(self.cron, timezone="UTC")
        if self.interval_seconds is not None:
            return IntervalTrigger(seconds=self.interval_seconds, timezone="UTC")
        return None
