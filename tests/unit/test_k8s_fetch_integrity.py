"""The init container's integrity check is the pool's: a version whose files do not match its
manifest fails at once (never retried into a crash loop, never loaded), and the pods check the
manifest's signature with the controller's key. The controller downloads nothing for this pool."""
from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.k8s import render
from controller.k8s.fetch_model import INTEGRITY_EXIT
from controller.k8s.settings import KubernetesSettings
from controller.pools.kubernetes import controller_verify_key
from controller.registry import integrity
from tests.unit.test_k8s_pool import POD, _pod, clock, pool  # noqa: F401  (fixtures)

TAMPERED = ("fetch_model: integrity check failed: 'qwen' version 7: the download does not match its manifest "
            "(changed: model.safetensors)")


def _fetch(**fields) -> dict:
    return {"name": "fetch-model", "restartCount": 0, **fields}


def test_an_integrity_failure_in_the_init_container_fails_the_version_at_once(emu, pool):  # noqa: F811
    pool.ensure("qwen", "7", Path("/unused"))
    done = {"terminated": {"exitCode": INTEGRITY_EXIT, "reason": "Error", "message": "Downloading...\n" + TAMPERED}}
    emu.put(POD, _pod(initContainerStatuses=[_fetch(state=done)]))
    served = pool.status("qwen", "7")
    assert served.state == "failed"
    assert served.detail.endswith(TAMPERED) and "changed: model.safetensors" in served.detail


def test_after_a_restart_the_last_run_s_integrity_failure_still_fails_it(emu, pool):  # noqa: F811
    pool.ensure("qwen", "7", Path("/unused"))
    emu.put(POD, _pod(initContainerStatuses=[_fetch(
        restartCount=1, state={"waiting": {"reason": "CrashLoopBackOff"}},
        lastState={"terminated": {"exitCode": INTEGRITY_EXIT, "message": TAMPERED}})]))
    assert pool.status("qwen", "7").state == "failed"


def test_any_other_fetch_failure_is_left_to_the_kubelet_s_retries(emu, pool):  # noqa: F811
    pool.ensure("qwen", "7", Path("/unused"))
    emu.put(POD, _pod(initContainerStatuses=[_fetch(
        restartCount=1, state={"waiting": {"reason": "CrashLoopBackOff"}},
        lastState={"terminated": {"exitCode": 1, "message": "fetch_model: error: MLflow unreachable"}})]))
    assert pool.status("qwen", "7").state == "starting"


def test_the_pods_check_signatures_with_the_controller_s_key():
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    assert controller_verify_key({integrity.SIGNING_KEY_ENV: raw.hex()}) == public     # derived from the signer
    assert controller_verify_key({integrity.VERIFY_KEY_ENV: public}) == public
    assert controller_verify_key({}) == ""

    env = render.fetch_container(KubernetesSettings(verify_key=public), "qwen", "7", "http://mlflow")["env"]
    assert {"name": "RELCTL_VERIFY_KEY", "value": public} in env
    env = render.fetch_container(KubernetesSettings(), "qwen", "7", "http://mlflow")["env"]
    assert all(e["name"] != "RELCTL_VERIFY_KEY" for e in env)

