"""The quantization stage: build the AWQ checkpoint, measure it, register it with its lineage.

Idempotent: a build already registered for this release (tag relctl.release_id) is reused,
so a crash between registering and saving the release never registers a second build.
Nothing is registered unless quantization and the quality report both succeeded.
"""
from __future__ import annotations

import logging
import shutil

from controller.domain.release import BuildOutcome, GateOutcome, Release
from controller.reconcile.context import Controller
from controller.registry import conventions as rc
from policies.schema import Policy

log = logging.getLogger(__name__)


def ensure_quantized(ctx: Controller, r: Release, policy: Policy) -> BuildOutcome:
    if r.status.get("build", {}).get("version"):
        b = r.status["build"]
        return BuildOutcome(True, b["version"], b.get("report", {}))
    existing = [v for v in ctx.registry.find_versions_by_tag(r.model, rc.TAG_RELEASE_ID, r.id)
                if v.tags.get(rc.TAG_QUANTIZATION)]
    if existing:
        v = existing[0]
        return BuildOutcome(True, v.version, {"quality": rc.quality_from_tags(v.tags)})
    try:
        return _build(ctx, r, policy)
    except Exception as exc:  # any stage error fails the release with its cause, never the loop
        log.exception("quantize.failed", extra={"release": r.id})
        return BuildOutcome(False, error=str(exc) or type(exc).__name__)


def _build(ctx: Controller, r: Release, policy: Policy) -> BuildOutcome:
    from quantize.base import spec_from_policy
    from quantize.job import run_quantize_job
    from quantize.report import quality_report

    q = policy.quantize
    parent = ctx.checkpoint_dir(r.model, r.candidate_version)
    out = ctx.workdir / "builds" / r.id
    shutil.rmtree(out, ignore_errors=True)
    job = run_quantize_job(parent, out, spec_from_policy(q), backend=q.backend,
                           timeout_s=q.timeout_seconds, max_memory_gb=q.max_memory_gb)
    report = quality_report(parent, out, quantization_seconds=job.seconds, peak_memory_mb=job.peak_memory_mb)
    figures = report.metrics()
    label = f"awq-w{q.bits}-g{q.group_size}"
    tags = {**rc.lineage_tags(r.candidate_version, label, _numeric(figures)), rc.TAG_RELEASE_ID: r.id}
    version = ctx.registry.register_checkpoint(
        r.model, out, tags=tags, description=f"AWQ build of version {r.candidate_version} ({r.id})")
    log.info("quantize.registered", extra={"release": r.id, "version": version})
    return BuildOutcome(True, version, {"quality": _numeric(figures), "quantization": label})


def check_gate(r: Release, build: BuildOutcome, policy: Policy) -> GateOutcome:
    from quantize.gate import check_gate as gate

    ok, reason = gate(build.report.get("quality", {}), policy.quality)
    return GateOutcome(ok, reason)


def _numeric(figures: dict) -> dict[str, float]:
    return {k: float(v) for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
