"""Quantization as a Kubernetes Job on a GPU node, with the local job's boundary.

Inputs: the parent version and the policy's quantize and quality sections (as JSON in the
Job's arguments). Progress: the Job's and its pod's state. Result: the pod's termination
message, a small JSON document written by controller/k8s/quantize_entry.py (the build's
new MLflow version, the gate). Cancel: delete the Job (foreground: its pod is stopped).
The Job uploads the build to MLflow itself; the controller never holds the weights.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from controller.k8s import health, names, render
from controller.k8s.api import KubeApi, KubeError
from controller.k8s.settings import KubernetesSettings

log = logging.getLogger(__name__)

TERMINATION_LOG = "/dev/termination-log"
RELEASE_LABEL = "relctl.io/release"


@dataclass(frozen=True)
class QuantizeJobState:
    state: str                   # "running" | "succeeded" | "failed"
    detail: str
    result: dict | None = None   # the entry's JSON once the pod has finished


def job_name(release_id: str) -> str:
    return ("relctl-quantize-" + re.sub(r"[^a-z0-9]+", "-", release_id.lower()).strip("-"))[:63].rstrip("-")


def render_job(k: KubernetesSettings, release_id: str, model: str, version: str, policy, mlflow_uri: str) -> dict:
    """The Job; `policy` is the release's Policy (its quantize and quality sections travel)."""
    labels = {"app.kubernetes.io/name": "relctl-quantize", "app.kubernetes.io/managed-by": names.MANAGED_BY,
              RELEASE_LABEL: re.sub(r"[^A-Za-z0-9_.-]", "-", release_id)[:63]}
    gpu = render.pod_spec(k, model, version, mlflow_uri)           # the pool's GPU affinity and tolerations
    pod = {"restartPolicy": "Never", "affinity": gpu["affinity"], "tolerations": gpu["tolerations"],
           "containers": [_container(k, release_id, model, version, policy, mlflow_uri)],
           "volumes": [{"name": "work", "emptyDir": {"sizeLimit": k.model_volume_size}}]}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_name(release_id), "namespace": k.namespace, "labels": labels,
                         "annotations": {names.MODEL_ANNOTATION: model, "relctl.io/version": str(version)}},
            "spec": {"backoffLimit": 0,                          # a failed quantization is not retried blindly
                     "activeDeadlineSeconds": int(policy.quantize.timeout_seconds) + 1800,   # + download/upload
                     "ttlSecondsAfterFinished": 86400,
                     "template": {"metadata": {"labels": labels}, "spec": pod}}}


def _container(k: KubernetesSettings, release_id: str, model: str, version: str, policy, mlflow_uri: str) -> dict:
    sections = {"quantize": policy.quantize.model_dump(mode="json"), "quality": policy.quality.model_dump(mode="json")}
    return {
        "name": "quantize", "image": k.relctl_image,
        "command": ["python", "-m", "controller.k8s.quantize_entry"],
        "args": ["--model", model, "--version", str(version), "--release", release_id,
                 "--policy-json", json.dumps(sections, sort_keys=True), "--workdir", "/work"],
        "env": [{"name": "MLFLOW_TRACKING_URI", "value": mlflow_uri},
                {"name": "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "value": "3"}],
        "resources": {"requests": {"cpu": k.cpu, "memory": k.memory, k.gpu_resource: "1"},
                      "limits": {k.gpu_resource: "1", "memory": k.memory}},
        "terminationMessagePath": TERMINATION_LOG, "terminationMessagePolicy": "File",
        "volumeMounts": [{"name": "work", "mountPath": "/work"}],
    }


class KubernetesQuantizeJobs:
    def __init__(self, api: KubeApi, k: KubernetesSettings, mlflow_uri: str, poll_seconds: float = 5.0):
        self._api, self._k, self._mlflow = api, k, k.mlflow_uri or mlflow_uri
        self._poll = poll_seconds

    def start(self, release_id: str, model: str, version: str, policy) -> None:
        """Idempotent: applying the same Job again changes nothing."""
        if self._api.get("batch/v1", "Job", self._k.namespace, job_name(release_id)) is None:
            self._api.apply(render_job(self._k, release_id, model, version, policy, self._mlflow))

    def observe(self, release_id: str) -> QuantizeJobState | None:
        job = self._api.get("batch/v1", "Job", self._k.namespace, job_name(release_id))
        if job is None:
            return None
        pods = self._api.list("v1", "Pod", self._k.namespace, labels=f"job-name={job_name(release_id)}")
        status = job.get("status") or {}
        result = next(filter(None, map(_termination_result, pods)), None)
        if status.get("succeeded"):
            return QuantizeJobState("succeeded", "job succeeded", result)
        failed = next((c for c in status.get("conditions") or [] if c.get("type") == "Failed"
                       and c.get("status") == "True"), None)
        if failed or status.get("failed"):
            why = (result or {}).get("error") or (failed or {}).get("message") or "pod failed"
            reason = (failed or {}).get("reason", "")
            return QuantizeJobState("failed", f"{reason}: {why}" if reason else why, result)
        waiting = next((w for w in map(health.why_waiting, pods) if w), None)
        return QuantizeJobState("running", waiting[1] if waiting else f"{status.get('active', 0)} pod(s) active")

    def cancel(self, release_id: str) -> bool:
        return self._api.delete("batch/v1", "Job", self._k.namespace, job_name(release_id))

    def run(self, release_id: str, model: str, version: str, policy, *, progress: Callable[..., None],
            cancel: threading.Event) -> dict | None:
        """The local build job's boundary, on the cluster: start the Job (or find it, after a restart),
        report its state as `progress(step=, detail=)` until it ends, delete it when `cancel` is set
        (then None). Returns the entry's result of a registered build; raises QuantizeJobFailed with
        the cause otherwise (the Job failed, the entry's error, or the quality gate's reason)."""
        name, started = job_name(release_id), False
        while True:
            if cancel.is_set():
                self._delete(release_id)
                return None
            try:
                if not started:
                    self.start(release_id, model, version, policy)
                    started = True
                state = self.observe(release_id)
            except KubeError as exc:
                if not exc.retryable:
                    raise
                progress(step="quantizing", detail=f"Job {name}: API server not answering ({exc.status}); retrying")
                cancel.wait(self._poll)
                continue
            if state is None:
                raise QuantizeJobFailed(f"Job {name} disappeared before it finished (deleted by someone else?)")
            progress(step="quantizing", detail=f"Job {name}: {state.detail}")
            if state.state != "running":
                return _outcome(name, state)
            cancel.wait(self._poll)


    def _delete(self, release_id: str) -> None:
        try:
            self.cancel(release_id)
        except KubeError as exc:    # the build is cancelled either way; the Job ends by its deadline
            log.warning("quantize_job.not_deleted", extra={"release": release_id, "error": str(exc)})
            return
        log.info("quantize_job.deleted", extra={"release": release_id, "job": job_name(release_id)})


class QuantizeJobFailed(RuntimeError):
    pass


def _outcome(name: str, state: QuantizeJobState) -> dict:
    result = state.result or {}
    if state.state == "failed" or result.get("status") == "error":
        raise QuantizeJobFailed(f"Job {name} failed: {result.get('error') or state.detail}")
    if result.get("status") == "gate_failed":
        raise QuantizeJobFailed(f"Job {name}: quality gate failed, nothing registered: "
                                f"{(result.get('gate') or {}).get('reason', 'no reason given')}")
    if result.get("status") != "succeeded" or not result.get("build_version"):
        raise QuantizeJobFailed(f"Job {name} succeeded without a result in its pod's termination message")
    return result


def build(settings, sessions) -> KubernetesQuantizeJobs:
    """Backend factory (controller.backends, kind "quantize"): builds run as Jobs on the cluster."""
    from controller.k8s.api import api_client
    k = settings.kubernetes
    return KubernetesQuantizeJobs(KubeApi(api_client(k), timeout=k.request_timeout_seconds), k, settings.mlflow_uri,
                                  poll_seconds=k.job_poll_seconds)


def _termination_result(pod: dict) -> dict | None:
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        message = (((c.get("state") or {}).get("terminated")) or {}).get("message")
        if message:
            try:
                return json.loads(message)
            except ValueError:
                return {"error": message.strip()[-500:]}
    return None
