"""Deploying the candidate (and keeping the stable version served) on the pool."""
from __future__ import annotations

from controller.domain.release import DeployOutcome, Release
from controller.pools.base import Served
from controller.reconcile.context import Controller
from controller.registry import conventions as rc


def choose_artifact(ctx: Controller, r: Release) -> dict:
    """Serve the quantized build where the pool can, else the full-precision candidate; say why."""
    build = r.status.get("build", {})
    if build.get("version"):
        method = build.get("report", {}).get("quality", {}).get("quant_method", "awq")
        ok, why = ctx.pool.can_serve(method)
        if ok:
            return {"version": build["version"], "quantization": method, "reason": why}
        return {"version": r.candidate_version, "quantization": "none",
                "reason": f"deploying full-precision version {r.candidate_version} instead of "
                          f"{method} build {build['version']}: {why}"}
    return {"version": r.candidate_version, "quantization": "none", "reason": "no quantized build"}


def ensure_serving(ctx: Controller, model: str, version: str) -> Served:
    current = ctx.pool.status(model, version)
    if current is not None and current.state in ("starting", "ready"):
        return current
    return ctx.pool.ensure(model, version, ctx.checkpoint_dir(model, version))


def ensure_deployed(ctx: Controller, r: Release) -> tuple[DeployOutcome, dict]:
    choice = r.status.get("deployment") or choose_artifact(ctx, r)
    servers = [ensure_serving(ctx, r.model, choice["version"])]
    if r.stable_version:
        servers.append(ensure_serving(ctx, r.model, r.stable_version))
    failed = [s for s in servers if s.state == "failed"]
    if failed:
        return DeployOutcome("failed", "; ".join(f"version {s.version}: {s.detail}" for s in failed)), choice
    if all(s.state == "ready" for s in servers):
        ctx.registry.set_alias(r.model, rc.ALIAS_CHALLENGER, choice["version"])
        return DeployOutcome("ready", choice["reason"]), choice
    return DeployOutcome("starting"), choice


def candidate_version(r: Release) -> str:
    return r.status.get("deployment", {}).get("version", r.candidate_version)
