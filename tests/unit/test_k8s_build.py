"""The backend factories read `settings.kubernetes` and reach the cluster through a kubeconfig."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from controller.k8s.leader import build_elector
from controller.k8s.settings import KubernetesSettings
from controller.pools import kubernetes as pool_backend
from controller.traffic import gateway_api
from controller.traffic.base import Backend, RouteSpec


def settings_for(emu, tmp_path: Path, **k) -> SimpleNamespace:
    kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig", token="t0ken")
    return SimpleNamespace(kubernetes=KubernetesSettings(kubeconfig=str(kubeconfig), namespace="llm", **k),
                           mlflow_uri="http://mlflow.relctl:5000",
                           models=[SimpleNamespace(name="qwen", policy="default")])


def test_pool_build_uses_the_kubeconfig_and_the_policy_of_the_watched_model(emu, tmp_path):
    pool = pool_backend.build(settings_for(emu, tmp_path, autoscaler="keda"), sessions=None)
    assert pool.ensure("qwen", "7", tmp_path).state == "starting"
    so = emu.get("/apis/keda.sh/v1alpha1/namespaces/llm/scaledobjects/qwen-v7")
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (3, 20)   # default policy
    init = emu.get("/apis/apps/v1/namespaces/llm/deployments/qwen-v7")["spec"]["template"]["spec"]["initContainers"]
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.relctl:5000"} in init[0]["env"]


def test_leader_elector_build(emu, tmp_path):
    elector = build_elector(settings_for(emu, tmp_path, lease_name="relctl-lease"), identity="pod-a")
    assert elector.tick() is True
    lease = emu.get("/apis/coordination.k8s.io/v1/namespaces/llm/leases/relctl-lease")
    assert lease["spec"]["holderIdentity"] == "pod-a"
    assert build_elector(settings_for(emu, tmp_path, leader_election=False), identity="pod-a") is None


def test_router_build_in_direct_mode(emu, tmp_path):
    router = gateway_api.build(settings_for(emu, tmp_path, mirror_mode="off"), sessions=None)
    router.apply(RouteSpec("qwen", (Backend("stable", "http://a", "5"),), {"stable": 100.0}))
    assert router.current("qwen").weights == {"stable": 100.0}
