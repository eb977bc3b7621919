"""Quantization as a Kubernetes Job: rendering, and start / observe / cancel on the API stand-in."""
from __future__ import annotations

import json

import kubernetes_validate
import pytest
from kubernetes import client as k8s

from controller.k8s.api import KubeApi
from controller.k8s.quantize_job import KubernetesQuantizeJobs, job_name, render_job
from controller.k8s.settings import KubernetesSettings
from policies.schema import Policy

NS = "llm"
JOB = f"/apis/batch/v1/namespaces/{NS}/jobs/relctl-quantize-rel-42"
POD = f"/api/v1/namespaces/{NS}/pods/relctl-quantize-rel-42-x7k2p"
K = KubernetesSettings(namespace=NS, gpu_product="NVIDIA-L40S")


@pytest.fixture
def jobs(emu):
    return KubernetesQuantizeJobs(KubeApi(k8s.ApiClient(k8s.Configuration(host=emu.url)), timeout=5), K,
                                  mlflow_uri="http://mlflow:5000")


def _pod(**state) -> dict:
    return {"metadata": {"name": "relctl-quantize-rel-42-x7k2p", "labels": {"job-name": "relctl-quantize-rel-42"}},
            "status": {"containerStatuses": [{"name": "quantize", "state": state}]}}


def test_the_job_carries_the_policy_runs_once_on_a_gpu_and_validates():
    policy = Policy.model_validate({"quantize": {"bits": 4, "group_size": 64, "timeout_seconds": 600}})
    job = render_job(K, "REL_42", "qwen", "3", policy, "http://mlflow:5000")
    kubernetes_validate.validate(job, "1.34.0", strict=True)
    assert job["metadata"]["name"] == job_name("REL_42") == "relctl-quantize-rel-42"
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 2400)
    c = spec["template"]["spec"]["containers"][0]
    sections = json.loads(c["args"][c["args"].index("--policy-json") + 1])
    assert sections["quantize"]["group_size"] == 64 and "quality" in sections
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    term = spec["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["NVIDIA-L40S"]


def test_start_is_idempotent_and_progress_comes_from_the_pod(emu, jobs):
    jobs.start("rel-42", "qwen", "3", Policy())
    jobs.start("rel-42", "qwen", "3", Policy())
    assert [m for m, _ in emu.writes()] == ["PATCH"]
    emu.put(POD, {**_pod(), "status": {"conditions": [{"type": "PodScheduled", "status": "False",
              "reason": "Unschedulable", "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu"}]}})
    state = jobs.observe("rel-42")
    assert state.state == "running" and "Insufficient nvidia.com/gpu" in state.detail


def test_the_result_is_read_from_the_termination_message(emu, jobs):
    jobs.start("rel-42", "qwen", "3", Policy())
    emu.edit(JOB, lambda j: j.update(status={"succeeded": 1}))
    emu.put(POD, _pod(terminated={"exitCode": 0, "message": json.dumps({"status": "succeeded", "build_version": "4"})}))
    state = jobs.observe("rel-42")
    assert (state.state, state.result) == ("succeeded", {"status": "succeeded", "build_version": "4"})


def test_a_failed_job_says_why(emu, jobs):
    jobs.start("rel-42", "qwen", "3", Policy())
    emu.edit(JOB, lambda j: j.update(status={"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}]}))
    emu.put(POD, _pod(terminated={"exitCode": 1, "message": json.dumps(
        {"status": "error", "error": "model 'qwen' has no version 3"})}))
    state = jobs.observe("rel-42")
    assert state.state == "failed" and state.detail == "BackoffLimitExceeded: model 'qwen' has no version 3"


def test_cancel_deletes_the_job(emu, jobs):
    jobs.start("rel-42", "qwen", "3", Policy())
    assert jobs.cancel("rel-42") is True and jobs.observe("rel-42") is None
    assert jobs.cancel("rel-42") is False
