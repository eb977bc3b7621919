"""A version's state from its Deployment, pods and events (pure functions).

ready: a pod passes its readiness probe. failed: a container crash-loops (after
`crashloop_restarts` restarts), an image cannot be pulled or a container cannot be made, or
the Deployment's own progress deadline passed (Kubernetes' ProgressDeadlineExceeded: never
ready), or the init container found the version's files do not match its manifest (its exit
code INTEGRITY_EXIT: failed at once, as the controller's own integrity check was); the detail
gives the reason from the pod's status and its latest warning event.
"""
from __future__ import annotations

from dataclasses import dataclass

from controller.k8s.fetch_model import INTEGRITY_EXIT

FETCH_CONTAINER = "fetch-model"          # render.fetch_container
FATAL_AT_ONCE = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError"}


@dataclass(frozen=True)
class Health:
    state: str                 # "starting" | "ready" | "failed"
    detail: str
    pod: str = ""              # the pod the detail is about (its events complete a failure)


def assess(deployment: dict, pods: list[dict], crashloop_restarts: int) -> Health:
    status = deployment.get("status") or {}
    ready, wanted = status.get("readyReplicas") or 0, status.get("replicas") or 0
    if ready >= 1:
        return Health("ready", f"{ready}/{wanted} pods ready")
    for pod in pods:
        broken = _broken_container(pod, crashloop_restarts)
        if broken:
            return Health("failed", broken, pod["metadata"]["name"])
    stuck = _progress_deadline(deployment)
    if stuck:
        waiting = next((w for w in map(why_waiting, pods) if w), None)
        return Health("failed", stuck + (f"; {waiting[1]}" if waiting else ""), waiting[0] if waiting else "")
    waiting = next((w for w in map(why_waiting, pods) if w), None)
    return Health("starting", f"0/{wanted} pods ready" + (f"; {waiting[1]}" if waiting else ""))


def _containers(pod: dict) -> list[dict]:
    st = pod.get("status") or {}
    return (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or [])


def _broken_container(pod: dict, crashloop_restarts: int) -> str:
    name = pod["metadata"]["name"]
    for c in _containers(pod):
        integrity = _integrity_failure(c)
        if integrity:
            return f"pod {name}: {integrity}"
        waiting = (c.get("state") or {}).get("waiting") or {}
        reason, restarts = waiting.get("reason", ""), c.get("restartCount") or 0
        if reason in FATAL_AT_ONCE or (reason == "CrashLoopBackOff" and restarts >= crashloop_restarts):
            return (f"pod {name} container {c.get('name')}: {reason} after {restarts} restarts"
                    f"{_last_exit(c)}{': ' + waiting['message'] if waiting.get('message') else ''}")
    return ""


def _integrity_failure(container: dict) -> str:
    """The fetch container's integrity error (now or in its last run): the files must never be loaded."""
    if container.get("name") != FETCH_CONTAINER:
        return ""
    for where in ("state", "lastState"):
        term = (container.get(where) or {}).get("terminated") or {}
        if term.get("exitCode") == INTEGRITY_EXIT:
            msg = (term.get("message") or "").strip().splitlines()
            return msg[-1][:500] if msg else "fetch_model: integrity check failed"
    return ""


def _last_exit(container: dict) -> str:
    term = ((container.get("lastState") or {}).get("terminated")) or {}
    if not term:
        return ""
    msg = (term.get("message") or "").strip().splitlines()
    return (f" (last exit {term.get('exitCode')}, {term.get('reason', '')}"
            f"{': ' + msg[-1][:300] if msg else ''})")


def _progress_deadline(deployment: dict) -> str:
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds", "?")
            return f"no pod ready within {deadline} s (ProgressDeadlineExceeded)"
    return ""


def why_waiting(pod: dict) -> tuple[str, str] | None:
    """(pod, why) for a pod not ready yet: unschedulable, a waiting container, or failing probes."""
    name, st = pod["metadata"]["name"], pod.get("status") or {}
    for cond in st.get("conditions") or []:
        if cond.get("status") == "False" and cond.get("type") in ("PodScheduled", "Ready") and cond.get("message"):
            return name, f"pod {name} {cond['type']}=False ({cond.get('reason', '')}): {cond['message']}"
    for c in _containers(pod):
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return name, f"pod {name} container {c.get('name')} waiting: {waiting['reason']}"
    return None


def latest_warning(events: list[dict]) -> str:
    """The newest Warning event's reason and message, e.g. a failing readiness probe."""
    warnings = [e for e in events if e.get("type") == "Warning"]
    if not warnings:
        return ""
    e = max(warnings, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return f"{e.get('reason', '')}: {(e.get('message') or '').strip()[:300]}"
