"""Objects of one deployed version, as plain dicts ready for server-side apply (pure functions).

Per version: a Deployment of the vLLM OpenAI server (an init container fetches the model
version from MLflow with relctl's own download code), a Service, a PodDisruptionBudget, an
autoscaler on GPU utilisation (HPA or KEDA ScaledObject) and, when the router points at
InferencePools, an InferencePool.
"""
from __future__ import annotations

from controller.k8s import names
from controller.k8s.health import FETCH_CONTAINER
from policies.kubernetes import KubernetesPolicy
from controller.k8s.settings import KubernetesSettings

MODEL_DIR = "/models"


def metadata(k: KubernetesSettings, model: str, version: str, name: str | None = None) -> dict:
    return {"name": name or names.version_name(model, version), "namespace": k.namespace,
            "labels": names.version_labels(model, version),
            "annotations": {names.MODEL_ANNOTATION: model, "relctl.io/version": str(version)}}


def deployment(k: KubernetesSettings, model: str, version: str, mlflow_uri: str) -> dict:
    labels = names.version_labels(model, version)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(k, model, version),
        "spec": {
            # no `replicas`: the autoscaler owns it, and an apply must not fight it
            "selector": {"matchLabels": names.selector(model, version)},
            "progressDeadlineSeconds": k.progress_deadline_seconds,
            "revisionHistoryLimit": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels,
                                      "annotations": {names.MODEL_ANNOTATION: model}},
                         "spec": pod_spec(k, model, version, mlflow_uri)},
        },
    }


def pod_spec(k: KubernetesSettings, model: str, version: str, mlflow_uri: str) -> dict:
    spec = {
        "terminationGracePeriodSeconds": k.termination_grace_seconds,
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": k.gpu_product_label, "operator": "In", "values": [k.gpu_product]}]}]}}},
        "tolerations": [{"key": k.gpu_resource, "operator": "Exists", "effect": "NoSchedule"}],
        "initContainers": [fetch_container(k, model, version, mlflow_uri)],
        "containers": [vllm_container(k, model)],
        "volumes": [
            {"name": "models", "emptyDir": {"sizeLimit": k.model_volume_size}},
            # vLLM's workers share tensors through /dev/shm; the default 64 MiB is too small
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
        ],
    }
    if k.service_account:
        spec["serviceAccountName"] = k.service_account
    return spec


def fetch_container(k: KubernetesSettings, model: str, version: str, mlflow_uri: str) -> dict:
    return {
        "name": FETCH_CONTAINER, "image": k.relctl_image,
        "command": ["python", "-m", "controller.k8s.fetch_model"],
        "args": ["--model", model, "--version", str(version), "--dest", MODEL_DIR],
        "env": [{"name": "MLFLOW_TRACKING_URI", "value": mlflow_uri},
                {"name": "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "value": "3"}]
               # the manifest's signature is checked where the files land (a public key: no secret)
               + ([{"name": "RELCTL_VERIFY_KEY", "value": k.verify_key}] if k.verify_key else []),
        "volumeMounts": [{"name": "models", "mountPath": MODEL_DIR}],
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",   # the pod's status then says why it failed
    }


def vllm_container(k: KubernetesSettings, model: str) -> dict:
    args = ["--model", f"{MODEL_DIR}/current", "--served-model-name", model, "--host", "0.0.0.0",
            "--port", str(k.port), "--tensor-parallel-size", str(k.gpu_count)]
    if k.max_model_len:
        args += ["--max-model-len", str(k.max_model_len)]
    resources = {"cpu": k.cpu, "memory": k.memory, k.gpu_resource: str(k.gpu_count)}
    health = {"httpGet": {"path": "/health", "port": "http"}}
    return {
        "name": "vllm", "image": k.vllm_image, "args": args + list(k.extra_args),
        "ports": [{"name": "http", "containerPort": k.port, "protocol": "TCP"}],
        "resources": {"requests": resources, "limits": {k.gpu_resource: str(k.gpu_count), "memory": k.memory}},
        # loading weights takes minutes: the startup probe holds liveness off until /health answers
        "startupProbe": {**health, "periodSeconds": 10, "failureThreshold": max(1, k.progress_deadline_seconds // 10)},
        "readinessProbe": {**health, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**health, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
        # let the endpoints drop this pod before vLLM stops taking requests
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "10"]}}},
        "volumeMounts": [{"name": "models", "mountPath": MODEL_DIR, "readOnly": True},
                         {"name": "dshm", "mountPath": "/dev/shm"}],
    }


def service(k: KubernetesSettings, model: str, version: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(k, model, version),
            "spec": {"type": "ClusterIP", "selector": names.selector(model, version),
                     "ports": [{"name": "http", "port": k.port, "targetPort": "http", "protocol": "TCP"}]}}


def service_url(k: KubernetesSettings, model: str, version: str) -> str:
    return f"http://{names.version_name(model, version)}.{k.namespace}.svc.cluster.local:{k.port}"


def disruption_budget(k: KubernetesSettings, model: str, version: str, p: KubernetesPolicy) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(k, model, version),
            "spec": {"maxUnavailable": p.max_unavailable, "selector": {"matchLabels": names.selector(model, version)}}}


def autoscaler(k: KubernetesSettings, model: str, version: str, p: KubernetesPolicy) -> dict:
    return (scaled_object if k.autoscaler == "keda" else hpa)(k, model, version, p)


def hpa(k: KubernetesSettings, model: str, version: str, p: KubernetesPolicy) -> dict:
    """HPA on the DCGM exporter's GPU utilisation, served by prometheus-adapter.

    A Pods metric (custom.metrics.k8s.io), not an External one: the HPA averages it over this
    Deployment's own pods, where an External metric would mix in other versions' GPUs.
    """
    a = p.autoscaling
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata(k, model, version),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": names.version_name(model, version)},
                     "minReplicas": a.min_replicas, "maxReplicas": a.max_replicas,
                     "metrics": [{"type": "Pods", "pods": {
                         "metric": {"name": k.gpu_util_metric},
                         "target": {"type": "AverageValue", "averageValue": _quantity(a.target_gpu_utilization)}}}],
                     # a new GPU pod takes minutes to load weights: scale down slowly
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}}}


def scaled_object(k: KubernetesSettings, model: str, version: str, p: KubernetesPolicy) -> dict:
    """KEDA ScaledObject with a Prometheus trigger; KEDA divides the sum by the replicas (AverageValue)."""
    a, name = p.autoscaling, names.version_name(model, version)
    query = f'sum({k.gpu_util_metric}{{namespace="{k.namespace}",pod=~"{names.pod_regex(model, version)}"}})'
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": metadata(k, model, version),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "minReplicaCount": a.min_replicas, "maxReplicaCount": a.max_replicas,
                     "pollingInterval": 30, "cooldownPeriod": 600,
                     "triggers": [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
                         "serverAddress": k.keda_prometheus_url, "query": query,
                         "threshold": _quantity(a.target_gpu_utilization)}}]}}


def inference_pool(k: KubernetesSettings, model: str, version: str) -> dict:
    """InferencePool (Gateway API Inference Extension v1): this version's pods behind an endpoint picker.

    v1 has no version or weight field: the split is an HTTPRoute weighting two pools. The
    endpoint picker (EPP) Service `<name>-epp` is installed with the extension's chart.
    """
    name = names.version_name(model, version)
    return {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
            "metadata": metadata(k, model, version),
            "spec": {"selector": {"matchLabels": names.selector(model, version)},
                     "targetPorts": [{"number": k.port}],
                     "endpointPickerRef": {"name": f"{name}-epp", "port": {"number": k.endpoint_picker_port},
                                           "failureMode": "FailClose"}}}


def version_objects(k: KubernetesSettings, model: str, version: str, p: KubernetesPolicy,
                    mlflow_uri: str) -> list[dict]:
    """Every object of one deployed version, in apply order."""
    objs = [deployment(k, model, version, mlflow_uri), service(k, model, version),
            disruption_budget(k, model, version, p), autoscaler(k, model, version, p)]
    if k.backend_kind == "inference-pool":
        objs.append(inference_pool(k, model, version))
    return objs


def _quantity(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
