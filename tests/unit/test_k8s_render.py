"""Rendering of a version's Kubernetes objects and the model's HTTPRoute (pure functions)."""
from __future__ import annotations

import argparse

import pytest
import yaml
from pydantic import ValidationError

from controller.k8s import names, render, routes
from controller.k8s.cli import add_parser, render_yaml
from policies.kubernetes import AutoscalingPolicy, KubernetesPolicy
from controller.k8s.settings import KubernetesSettings
from controller.traffic.base import Backend, RouteSpec

K = KubernetesSettings(namespace="llm", gpu_product="NVIDIA-H200", gpu_count=2)
P = KubernetesPolicy(autoscaling=AutoscalingPolicy(target_gpu_utilization=65, min_replicas=2, max_replicas=9))


def _spec(w: float, mirror: str | None = None) -> RouteSpec:
    return RouteSpec("Org_Model-AWQ", (Backend("stable", "http://s", "5"), Backend("candidate", "http://c", "7")),
                     {"stable": 100 - w, "candidate": w}, mirror_to=mirror, mirror_percent=40)


def test_names_are_dns_labels_and_distinct_for_lossy_slugs():
    a, b = names.version_name("Org_Model-AWQ", "7"), names.version_name("org-model-awq", "7")
    assert a != b and b == "org-model-awq-v7"
    for n in (a, b, names.version_name("x" * 200, "123456")):
        assert len(n) <= 63 and n[0].isalpha() and set(n) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")


def test_deployment_runs_vllm_on_the_pool_gpu_with_probes_and_an_init_fetch():
    d = render.deployment(K, "Org_Model-AWQ", "7", "http://mlflow:5000")
    pod = d["spec"]["template"]["spec"]
    vllm, fetch = pod["containers"][0], pod["initContainers"][0]
    assert "replicas" not in d["spec"]                      # the autoscaler owns it
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert vllm["args"][vllm["args"].index("--tensor-parallel-size") + 1] == "2"
    assert vllm["args"][vllm["args"].index("--served-model-name") + 1] == "Org_Model-AWQ"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert vllm[probe]["httpGet"]["path"] == "/health"
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                           "values": ["NVIDIA-H200"]}]}]
    assert fetch["command"][-1] == "controller.k8s.fetch_model"
    assert fetch["args"] == ["--model", "Org_Model-AWQ", "--version", "7", "--dest", "/models"]
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"} in fetch["env"]
    assert pod["terminationGracePeriodSeconds"] == 120 and vllm["lifecycle"]["preStop"]


@pytest.mark.parametrize("kind", ["hpa", "keda"])
def test_autoscaler_takes_its_bounds_and_target_from_the_policy(kind):
    a = render.autoscaler(K.model_copy(update={"autoscaler": kind}), "Org_Model-AWQ", "7", P)
    if kind == "hpa":
        assert a["kind"] == "HorizontalPodAutoscaler"
        assert (a["spec"]["minReplicas"], a["spec"]["maxReplicas"]) == (2, 9)
        metric = a["spec"]["metrics"][0]["pods"]
        assert metric["metric"]["name"] == "DCGM_FI_DEV_GPU_UTIL" and metric["target"]["averageValue"] == "65"
    else:
        assert a["kind"] == "ScaledObject"
        assert (a["spec"]["minReplicaCount"], a["spec"]["maxReplicaCount"]) == (2, 9)
        trig = a["spec"]["triggers"][0]
        assert trig["type"] == "prometheus" and trig["metadata"]["threshold"] == "65"
        assert 'namespace="llm"' in trig["metadata"]["query"]


def test_policy_rejects_max_below_min():
    with pytest.raises(ValidationError, match="max_replicas"):
        AutoscalingPolicy(min_replicas=5, max_replicas=3)


def test_inference_pool_selects_the_version_pods_on_the_vllm_port():
    ip = render.inference_pool(K, "Org_Model-AWQ", "7")
    assert ip["apiVersion"] == "inference.networking.k8s.io/v1"
    assert ip["spec"]["selector"]["matchLabels"] == names.selector("Org_Model-AWQ", "7")
    assert ip["spec"]["targetPorts"] == [{"number": 8000}]


@pytest.mark.parametrize("kind", ["service", "inference-pool"])
def test_route_weights_carry_the_split_and_read_back(kind):
    k = K.model_copy(update={"backend_kind": kind, "mirror_mode": "off"})
    spec = _spec(12.5)
    route = routes.http_route(k, spec)
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [r["weight"] for r in refs] == [8750, 1250]
    assert refs[1]["kind"] == ("Service" if kind == "service" else "InferencePool")
    assert routes.observed_weights(k, route, spec) == {"stable": 87.5, "candidate": 12.5}
    assert routes.desired_spec(route) == spec


def test_request_mirror_targets_the_candidate_service_and_gateway_mode_targets_relctl():
    spec = _spec(0, mirror="candidate")
    rule = routes.http_route(K.model_copy(update={"mirror_mode": "request-mirror"}), spec)["spec"]["rules"][0]
    mirror = rule["filters"][0]["requestMirror"]
    assert mirror["backendRef"]["name"] == names.version_name("Org_Model-AWQ", "7") and mirror["percent"] == 40
    rule = routes.http_route(K, spec)["spec"]["rules"][0]          # default mode: relctl-gateway
    assert [r["name"] for r in rule["backendRefs"]] == ["relctl-gateway"] and "filters" not in rule
    assert rule["matches"][0]["headers"][0]["value"] == "Org_Model-AWQ"


def test_cli_render_prints_every_object_as_yaml():
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(["k8s", "render", "--model", "m", "--version", "3", "--stable", "2", "--weight", "5"])
    docs = list(yaml.safe_load_all(render_yaml(args)))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "PodDisruptionBudget",
                                         "HorizontalPodAutoscaler", "HTTPRoute"]
    args.weight = 150
    with pytest.raises(ValueError, match="--weight"):
        render_yaml(args)
