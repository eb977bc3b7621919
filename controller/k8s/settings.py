"""Settings of the Kubernetes pool and the Gateway API router (`kubernetes:` in the settings file)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class KubernetesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Where and how to reach the cluster.
    namespace: str = Field("relctl", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    in_cluster: bool = Field(False, description="use the pod's service account (else kubeconfig)")
    kubeconfig: str | None = Field(None, description="kubeconfig path; default ~/.kube/config")
    context: str | None = None
    request_timeout_seconds: float = Field(15, gt=0)
    leader_election: bool = Field(True, description="replicas elect one reconciler through a Lease")
    lease_name: str = "relctl-controller"
    lease_seconds: int = Field(15, ge=2)
    renew_deadline_seconds: float = Field(10, gt=0)

    # The model servers.
    vllm_image: str = "vllm/vllm-openai:v0.32.0"
    relctl_image: str = Field("relctl:0.1.0", description="image holding relctl; its init container "
                              "downloads the model version from MLflow")
    mlflow_uri: str = Field("", description="MLflow as pods reach it; default: the controller's mlflow_uri")
    verify_key: str = Field("", description="ed25519 public key (hex) the init container checks each version's "
                            "manifest signature with; default: the controller's RELCTL_VERIFY_KEY or signing key")
    port: int = Field(8000, ge=1, le=65535)
    max_model_len: int | None = Field(None, ge=16)
    extra_args: list[str] = Field(default_factory=list, description="more vLLM server arguments")
    gpu_resource: str = "nvidia.com/gpu"
    gpu_count: int = Field(1, ge=1, le=16, description="GPUs per pod (tensor parallel size)")
    gpu_product_label: str = "nvidia.com/gpu.product"
    gpu_product: str = Field("NVIDIA-H100-80GB-HBM3", min_length=1,
                             description="one pool is one GPU product (node affinity on gpu_product_label)")
    cpu: str = "4"
    memory: str = "32Gi"
    model_volume_size: str = "100Gi"
    service_account: str | None = None
    termination_grace_seconds: int = Field(120, ge=0)
    progress_deadline_seconds: int = Field(900, ge=30, description="a Deployment with no ready pod "
                                           "after this long is failed (Kubernetes' ProgressDeadlineExceeded)")
    crashloop_restarts: int = Field(3, ge=1, description="container restarts that make a version failed")
    job_poll_seconds: float = Field(5, gt=0, description="how often a build looks at its quantization Job")

    # Autoscaling on GPU utilisation (targets and bounds come from the policy).
    autoscaler: Literal["hpa", "keda"] = "hpa"
    gpu_util_metric: str = "DCGM_FI_DEV_GPU_UTIL"
    keda_prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"

    # Traffic (Gateway API).
    gateway_name: str = "inference-gateway"
    gateway_namespace: str | None = Field(None, description="default: namespace")
    backend_kind: Literal["service", "inference-pool"] = Field(
        "service", description="what an HTTPRoute backendRef points at: a plain Service per version, or an "
                               "InferencePool (inference.networking.k8s.io/v1) per version")
    endpoint_picker_port: int = Field(9002, ge=1, le=65535)
    model_header: str = Field("X-Gateway-Model-Name", description="header the body-based router sets from "
                              "the request's model; empty: match on path only")
    path_prefix: str = "/v1"
    mirror_mode: Literal["relctl-gateway", "request-mirror", "off"] = Field(
        "relctl-gateway", description="relctl-gateway: the route sends everything to relctl's gateway, which "
        "splits, mirrors and compares (paired shadow); request-mirror: Gateway API RequestMirror (answers "
        "discarded: load only, no comparison); off: no shadow traffic")
    relctl_gateway_service: str = "relctl-gateway"
    relctl_gateway_port: int = Field(8080, ge=1, le=65535)
    relctl_gateway_admin_url: str = "http://relctl-gateway:8080"   # admin API shares the port
