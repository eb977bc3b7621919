"""Deploying the candidate (and keeping the stable version served) on the pool.

Nothing here waits: a checkpoint download is a job, a server start is observed through
the pool's status on later ticks.
"""
from __future__ import annotations

from pathlib import Path

from controller.domain.release import DeployOutcome, Release
from controller.pools.base import Served
from controller.reconcile.context import Controller
from controller.registry import conventions as rc

DOWNLOAD_RETRY_SECONDS = 10.0   # a failed download (registry down) is tried again after this


def choose_artifact(ctx: Controller, r: Release) -> dict:
    """Serve the quantized build where the pool can, else the full-precision candidate; say why."""
    build = r.status.get("build", {})
    speed = build.get("report", {}).get("speed") or {}
    if build.get("version") and speed.get("action") == "deploy_full_precision":
        return {"version": r.candidate_version, "quantization": "none",
                "reason": f"deploying full-precision version {r.candidate_version} instead of build "
                          f"{build['version']}, slower than the policy allows: {speed['reason']}"}
    if build.get("version"):
        method = build.get("report", {}).get("quality", {}).get("quant_method", "awq")
        ok, why = ctx.pool.can_serve(method)
        if ok:
            return {"version": build["version"], "quantization": method, "reason": why}
        return {"version": r.candidate_version, "quantization": "none",
                "reason": f"deploying full-precision version {r.candidate_version} instead of "
                          f"{method} build {build['version']}: {why}"}
    return {"version": r.candidate_version, "quantization": "none", "reason": "no quantized build"}


def ensure_serving(ctx: Controller, model: str, version: str, owner: str) -> Served:
    """The version's server as it is now; its download and start are begun if needed (never awaited).

    `owner` names who needs it (a release id, or the model for its champion) for the download job.
    """
    current = ctx.pool.status(model, version)
    if current is not None and current.state in ("starting", "ready"):
        return current
    if ctx.pool.fetches_checkpoints:     # its servers download and verify the version themselves
        return ctx.pool.ensure(model, version, None)
    job = ctx.jobs.ensure(owner, f"download-{version}",
                          lambda _: {"path": str(ctx.download_checkpoint(model, version))},
                          retry_failed_after=DOWNLOAD_RETRY_SECONDS)
    if job.state == "succeeded":
        return ctx.pool.ensure(model, version, Path(job.result["path"]))
    if job.state == "failed" and job.result.get("error_type") == "IntegrityError":   # not transient: never load it
        return Served(model, version, "", "failed", f"integrity check of version {version} failed: {job.error}")
    detail = f"downloading version {version}" + (f" (last attempt failed: {job.error})" if job.error else "")
    return Served(model, version, "", "starting", detail)


def ensure_deployed(ctx: Controller, r: Release) -> tuple[DeployOutcome, dict]:
    choice = r.status.get("deployment") or choose_artifact(ctx, r)
    servers = [ensure_serving(ctx, r.model, choice["version"], r.id)]
    if r.stable_version:
        servers.append(ensure_serving(ctx, r.model, r.stable_version, r.id))
    failed = [s for s in servers if s.state == "failed"]
    if failed:
        return DeployOutcome("failed", "; ".join(f"version {s.version}: {s.detail}" for s in failed)), choice
    if all(s.state == "ready" for s in servers):
        ctx.registry.set_alias(r.model, rc.ALIAS_CHALLENGER, choice["version"])
        return DeployOutcome("ready", choice["reason"]), choice
    return DeployOutcome("starting", "; ".join(s.detail for s in servers if s.detail)), choice


def candidate_version(r: Release) -> str:
    """The version the candidate track serves (the build, or the full-precision candidate)."""
    return r.status.get("deployment", {}).get("version", r.candidate_version)
