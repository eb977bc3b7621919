"""The quantization stage: build the AWQ checkpoint, measure it, register it with its lineage.

Idempotent: a build already registered for this release (tag relctl.release_id) is reused,
so a crash between registering and saving the release never registers a second build.
Nothing is registered unless quantization and the quality report both succeeded; a failed
attempt is still logged as a failed MLflow run with its log.
"""
from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import fields

from controller.domain.release import BuildOutcome, GateOutcome, Release
from controller.reconcile.context import Controller
from controller.reconcile.evaluation_servers import evaluation_target, served_pair
from controller.registry import conventions as rc
from policies.schema import Policy

log = logging.getLogger(__name__)
TAG_QUANTIZATION_RUN = "relctl.quantization_run_id"


def ensure_quantized(ctx: Controller, r: Release, policy: Policy) -> BuildOutcome:
    if r.status.get("build", {}).get("version"):
        b = r.status["build"]
        return BuildOutcome(True, b["version"], b.get("report", {}))
    existing = [v for v in ctx.registry.find_versions_by_tag(r.model, rc.TAG_RELEASE_ID, r.id)
                if v.tags.get(rc.TAG_QUANTIZATION)]
    if existing:
        v = existing[0]
        return BuildOutcome(True, v.version, {"quality": rc.quality_from_tags(v.tags),
                                              "quantization": v.tags[rc.TAG_QUANTIZATION]})
    try:
        with _cores_away_from_servers(ctx):
            return _build(ctx, r, policy)
    except Exception as exc:  # any stage error fails the release with its cause, never the loop
        log.exception("quantize.failed", extra={"release": r.id})
        _log_failed_run(ctx, r, exc)
        return BuildOutcome(False, error=str(exc) or type(exc).__name__)


def _build(ctx: Controller, r: Release, policy: Policy) -> BuildOutcome:
    from quantize.base import spec_from_policy
    from quantize.job import run_quantize_job
    from quantize.mlflow_log import log_quantization_run

    q = policy.quantize
    parent = ctx.checkpoint_dir(r.model, r.candidate_version)
    out = ctx.workdir / "builds" / r.id
    shutil.rmtree(out, ignore_errors=True)
    spec = spec_from_policy(q)
    job = run_quantize_job(parent, out, spec, backend=q.backend,
                           timeout_s=q.timeout_seconds, max_memory_gb=q.max_memory_gb, tracking_uri=ctx.registry.uri)
    report = _measure(ctx, r, policy, parent, out, job)
    run_id = log_quantization_run(ctx.registry.uri, report, job, out,
                                  tags={rc.TAG_RELEASE_ID: r.id, rc.TAG_PARENT_VERSION: r.candidate_version})
    tags = {**rc.lineage_tags(r.candidate_version, spec.label(), report.metrics()),
            rc.TAG_RELEASE_ID: r.id, TAG_QUANTIZATION_RUN: run_id}
    version = ctx.registry.register_checkpoint(
        r.model, out, tags=tags, description=f"AWQ build of version {r.candidate_version} ({r.id})")
    log.info("quantize.registered", extra={"release": r.id, "version": version, "run_id": run_id})
    return BuildOutcome(True, version, {"quality": report.to_dict(), "quantization": spec.label(), "run_id": run_id})


def _measure(ctx: Controller, r: Release, policy: Policy, parent, build, job):
    """The quality report, on the pool's vLLM when the policy and pool allow, else on CPU."""
    from quantize.dequant import quant_config
    from quantize.report import quality_report

    method = quant_config(build).get("quant_method")
    target = evaluation_target(policy.quality.evaluate_on, ctx.pool.name, ctx.pool.can_serve(method))
    cost = {"quantization_seconds": job.seconds, "peak_memory_mb": job.peak_memory_mb}
    log.info("quantize.evaluate", extra={"release": r.id, "on": target, "quant_method": method})
    if target == "cpu":
        return quality_report(parent, build, **cost)
    with served_pair(ctx.pool, r.model, r.id, parent, build, policy.deploy_timeout_seconds) as pair:
        return quality_report(parent, build, served=pair, **cost)


def _log_failed_run(ctx: Controller, r: Release, exc: Exception) -> None:
    from quantize.mlflow_log import log_quantization_run
    try:
        log_quantization_run(ctx.registry.uri, None, None, None, error=str(exc),
                             log_text=getattr(exc, "log_text", None), tags={rc.TAG_RELEASE_ID: r.id})
    except Exception as log_exc:  # the release still fails with the original cause
        log.warning("quantize.run_not_logged", extra={"release": r.id, "error": str(log_exc)})


@contextmanager
def _cores_away_from_servers(ctx: Controller):
    """Run quantization and evaluation on cores no model server is pinned to.

    A CPU vLLM server's OpenMP threads keep their core busy; torch sharing that core
    slows down several-fold. Affinity is per thread and inherited by the job's subprocess.
    """
    import torch

    everything = os.sched_getaffinity(0)
    busy = getattr(ctx.pool, "busy_cores", set)()
    threads = torch.get_num_threads()
    quiet = (everything - busy) or everything
    os.sched_setaffinity(0, quiet)
    torch.set_num_threads(len(quiet))
    try:
        yield
    finally:
        os.sched_setaffinity(0, everything)
        torch.set_num_threads(threads)


def check_gate(r: Release, build: BuildOutcome, policy: Policy) -> GateOutcome:
    from quantize.gate import check_gate as gate
    from quantize.report import QualityReport

    quality = build.report.get("quality", {})
    known = {f.name for f in fields(QualityReport)}
    try:
        report = QualityReport(**{k: v for k, v in quality.items() if k in known})
    except TypeError as exc:
        return GateOutcome(False, f"quality report of build {build.version} is incomplete: {exc}")
    return GateOutcome(*gate(report, policy.quality))
