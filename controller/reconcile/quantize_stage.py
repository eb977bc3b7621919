"""The quantization stage: build the AWQ checkpoint, measure it, register it with its lineage.

The whole build runs as one observed job (controller/reconcile/jobs.py): a tick starts it
once and reads its state; it never waits. Progress (quantization per layer, evaluation
servers starting, scoring) is written into the job as it goes. Idempotent: a build already
registered for this release (tag relctl.release_id) is reused, so a crash between
registering and saving the release never registers a second build; a build that finished
quantizing but was not yet registered is reused once its files are checked (finished_build.py). A cancelled job stops
the quantize subprocess and the evaluation servers and registers nothing; a failed attempt
is still logged as a failed MLflow run with its log.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from controller.domain.release import BuildOutcome, GateOutcome, Release
from controller.reconcile import finished_build
from controller.reconcile.context import Controller
from controller.reconcile.evaluation_servers import evaluation_labels, evaluation_target, hand_over, served_pair
from controller.reconcile.jobs import Cancelled, JobContext, throttled
from controller.registry import conventions as rc
from policies.schema import Policy

log = logging.getLogger(__name__)
TAG_QUANTIZATION_RUN = "relctl.quantization_run_id"
BUILD_JOB = "build"
REUSED = "build registered before a controller restart and reused; it was registered without a speed measurement"
JOB_NO_SPEED = "built by a quantization Job, which measures quality only (no speed gate)"


def observe_build(ctx: Controller, r: Release, policy: Policy) -> BuildOutcome | None:
    """The build's outcome, or None while its job runs (started here if it is not running)."""
    if r.status.get("build", {}).get("version"):
        b = r.status["build"]
        return BuildOutcome(True, b["version"], b.get("report", {}))
    job = ctx.jobs.ensure(r.id, BUILD_JOB, lambda jc: _build_job(ctx, r, policy, jc))
    if job.state == "succeeded":
        return BuildOutcome(True, job.result["version"], job.result["report"])
    if job.state == "failed":
        return BuildOutcome(False, error=job.error)
    return None


def build_progress(ctx: Controller, r: Release) -> dict[str, Any]:
    job = ctx.jobs.get(r.id, BUILD_JOB)
    return {"kind": BUILD_JOB, "state": job.state, "attempt": job.attempt, **job.progress} if job else {}


def _build_job(ctx: Controller, r: Release, policy: Policy, jc: JobContext) -> dict[str, Any]:
    existing = _registered_build(ctx, r, REUSED)
    if existing:  # registered before a crash: reuse, never register twice
        return existing
    if ctx.quantize_jobs is not None:
        return _build_as_job(ctx, r, policy, jc)
    try:
        with _cores_away_from_servers(ctx):
            return _build(ctx, r, policy, jc)
    except Cancelled:
        raise
    except Exception as exc:
        if jc.cancel.is_set():
            raise Cancelled(str(exc)) from None
        _log_failed_run(ctx, r, exc)
        raise


def _registered_build(ctx: Controller, r: Release, not_measured: str) -> dict[str, Any] | None:
    """The build registered for this release (tag relctl.release_id), with its report read back from its tags."""
    existing = [v for v in ctx.registry.find_versions_by_tag(r.model, rc.TAG_RELEASE_ID, r.id)
                if v.tags.get(rc.TAG_QUANTIZATION)]
    if not existing:
        return None
    v = existing[0]
    verdict = rc.speed_from_tags(v.tags)
    speed = speed_document(None, not_measured) if verdict is None else \
        {"measured": True, "passed": verdict["action"] == "proceed", **verdict, "comparison": None}
    return {"version": v.version, "report": {"quality": rc.quality_from_tags(v.tags),
                                             "quantization": v.tags[rc.TAG_QUANTIZATION], "speed": speed}}


def _build_as_job(ctx: Controller, r: Release, policy: Policy, jc: JobContext) -> dict[str, Any]:
    """quantize_runner kubernetes: a Job quantizes, gates and registers the build (deleted on cancel);
    the controller reads the registered version back and never holds the weights."""
    result = ctx.quantize_jobs.run(r.id, r.model, r.candidate_version, policy, progress=jc.progress, cancel=jc.cancel)
    jc.check()
    built = _registered_build(ctx, r, JOB_NO_SPEED)
    if result is None or built is None:
        raise RuntimeError(f"the quantization Job reported version {result and result.get('build_version')}, but "
                           f"no version of {r.model} carries {rc.TAG_RELEASE_ID}={r.id}")
    return built


def _build(ctx: Controller, r: Release, policy: Policy, jc: JobContext) -> dict[str, Any]:
    from quantize.base import spec_from_policy
    from quantize.mlflow_log import log_quantization_run

    q = policy.quantize
    jc.progress(step="downloading", detail=f"version {r.candidate_version}")
    parent = ctx.download_checkpoint(r.model, r.candidate_version)
    out = ctx.workdir / "builds" / r.id
    spec = spec_from_policy(q)
    job = finished_build.reuse(out, r.candidate_version, spec)
    if job is not None:   # finished before the controller was killed: quantizing again would only cost time
        log.info("quantize.build_reused", extra={"release": r.id, "build": str(out)})
        jc.progress(step="quantizing", detail=f"{q.backend} {spec.label()}: reusing the build finished before "
                                              f"a controller restart")
    else:
        job = _quantize(ctx, r, policy, parent, out, spec, jc)
    report, kept, speed, not_measured = _measure(ctx, r, policy, parent, out, job, jc)
    jc.check()  # nothing is registered for a cancelled release
    jc.progress(step="registering")
    run_id = log_quantization_run(ctx.registry.uri, report, job, out,
                                  tags={rc.TAG_RELEASE_ID: r.id, rc.TAG_PARENT_VERSION: r.candidate_version})
    if speed is not None:
        _log_speed(ctx.registry.uri, run_id, speed)
    tags = {**rc.lineage_tags(r.candidate_version, spec.label(), report.metrics()),
            rc.TAG_QUALITY_SUITE: str(policy.quality.suite), rc.TAG_RELEASE_ID: r.id, TAG_QUANTIZATION_RUN: run_id,
            **(rc.speed_tags(speed.action, speed.reason) if speed is not None else {})}
    version = ctx.registry.register_checkpoint(
        r.model, out, tags=tags, description=f"AWQ build of version {r.candidate_version} ({r.id})")
    log.info("quantize.registered", extra={"release": r.id, "version": version, "run_id": run_id})
    if kept:   # the evaluation server of what gets deployed becomes the candidate's server
        action = speed.action if speed else "proceed"
        if action == "proceed":
            hand_over(ctx.pool, r.model, r.id, "build", version)
        elif action == "deploy_full_precision":
            hand_over(ctx.pool, r.model, r.id, "parent", r.candidate_version)
        else:
            hand_over(ctx.pool, r.model, r.id, None, version)
    return {"version": version, "report": {"quality": report.to_dict(), "quantization": spec.label(),
                                           "run_id": run_id, "speed": speed_document(speed, not_measured)}}


def _quantize(ctx: Controller, r: Release, policy: Policy, parent: Path, out: Path, spec, jc: JobContext):
    """Quantize the parent into `out` afresh (the parent's evaluation server starting meanwhile) and
    record the finished build for a restarted job (finished_build)."""
    from quantize.job import run_quantize_job

    q = policy.quantize
    finished_build.forget(out)
    shutil.rmtree(out, ignore_errors=True)
    early = _start_parent_server(ctx, r, policy, parent)
    jc.progress(step="quantizing", detail=f"{q.backend} {spec.label()}")
    try:
        job = run_quantize_job(parent, out, spec, backend=q.backend, timeout_s=q.timeout_seconds,
                               max_memory_gb=q.max_memory_gb, tracking_uri=ctx.registry.uri, cancel=jc.cancel,
                               on_progress=lambda ev: jc.progress(step="quantizing", quantize=ev))
        jc.check()
    except BaseException:
        if early:
            ctx.pool.stop(r.model, evaluation_labels(r.id)["parent"])
        raise
    finished_build.record(out, r.candidate_version, job)
    return job


# what each backend writes (config.json's quant_method), to know before the build whether the pool serves it
BUILD_FORMAT = {"autoawq": "awq", "llmcompressor": "compressed-tensors"}


def _start_parent_server(ctx: Controller, r: Release, policy: Policy, parent) -> bool:
    """Start the parent's evaluation server while the build is quantized (a vLLM start overlaps the
    quantization instead of following it) where the build will be evaluated on the pool; True if so.
    served_pair finds it starting or ready; a restarted controller adopts it (stable label)."""
    method = BUILD_FORMAT.get(policy.quantize.backend)
    if method is None or policy.quality.evaluate_on == "cpu" or not ctx.pool.can_serve(method)[0]:
        return False
    ctx.pool.ensure(r.model, evaluation_labels(r.id)["parent"], parent)
    return True


def speed_document(speed, not_measured: str | None) -> dict[str, Any]:
    """The speed gate's verdict and figures as kept in the build report (the release report's speed
    table); without a measurement, why not."""
    if speed is None:
        return {"measured": False, "reason": not_measured or "not measured"}
    finite = {side: [{k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in row.items()}
                     for row in rows] for side, rows in speed.comparison.to_dict().items()}   # JSON has no NaN
    return {"measured": True, "passed": speed.passed, "action": speed.action, "reason": speed.reason,
            "comparison": finite}


def _measure(ctx: Controller, r: Release, policy: Policy, parent, build, job, jc: JobContext):
    """The quality report, on the pool's vLLM when the policy and pool allow, else on CPU; on the
    pool also the speed gate (build against parent, same prompts, the policy's concurrency levels).

    Returns (report, whether the build's evaluation server was kept for adoption, speed verdict or
    None, why the speed was not measured or None). Progress: each server's state while they start,
    items scored (at most once a second), concurrency levels measured."""
    from quantize.dequant import quant_config
    from quantize.report import quality_report
    from quantize.speed import default_prompts, speed_gate

    method = quant_config(build).get("quant_method")
    can_serve = ctx.pool.can_serve(method)
    target = evaluation_target(policy.quality.evaluate_on, ctx.pool.name, can_serve)
    cost = {"quantization_seconds": job.seconds, "peak_memory_mb": job.peak_memory_mb}
    log.info("quantize.evaluate", extra={"release": r.id, "on": target, "quant_method": method})
    suite = policy.quality.suite
    scored = throttled(lambda done, total: jc.progress(done=done, total=total))
    if target == "cpu":
        jc.progress(step="evaluating", detail=f"scoring {suite} on CPU (dequantized weights)")
        report = quality_report(parent, build, eval_set=suite, on_progress=scored, **cost)
        why = ("policy quality.evaluate_on is 'cpu'" if policy.quality.evaluate_on == "cpu"
               else f"evaluated on CPU: pool {ctx.pool.name} cannot serve the build ({can_serve[1]})")
        return report, False, None, why
    jc.progress(step="evaluating", detail=f"starting parent and build servers on pool {ctx.pool.name}")
    with served_pair(ctx.pool, r.model, r.id, parent, build, policy.deploy_timeout_seconds,
                     cancel=jc.cancel, keep=True, on_progress=lambda states: jc.progress(
                         servers=states, done=sum(s == "ready" for s in states.values()), total=len(states))) as pair:
        jc.progress(step="evaluating", detail=f"scoring {suite} on pool {ctx.pool.name}")
        report = quality_report(parent, build, eval_set=suite, served=pair, on_progress=scored, **cost)
        jc.check()
        levels = policy.quality.speed_concurrency
        jc.progress(step="measuring speed", detail=f"concurrency levels {', '.join(map(str, levels))}")
        speed = speed_gate(pair.parent_url, pair.build_url, pair.model, default_prompts(), policy.quality,
                           on_progress=lambda done, total: jc.progress(
                               done=done, total=total,
                               item=f"concurrency {levels[done]}" if done < total else "all levels measured"))
        return report, True, speed, None


def _log_speed(uri: str, run_id: str, speed) -> None:
    """The speed table and figures on the build's MLflow run."""
    from mlflow.tracking import MlflowClient
    try:
        client = MlflowClient(uri)
        client.log_text(run_id, speed.comparison.table(), "speed_gate.md")
        for key, value in speed.comparison.metrics().items():
            client.log_metric(run_id, key, value)
    except Exception as exc:  # the figures are kept in the release either way
        log.warning("quantize.speed_not_logged", extra={"run_id": run_id, "error": str(exc)})


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
    ok, reason = gate(report, policy.quality)
    speed = build.report.get("speed") or {}
    if ok and speed.get("action") == "fail":
        return GateOutcome(False, f"speed gate: {speed['reason']}")
    return GateOutcome(ok, reason)
