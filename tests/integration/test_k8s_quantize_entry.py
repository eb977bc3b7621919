"""The quantization Job's entry point (controller.k8s.quantize_entry) against a real MLflow
server and a tiny model: it quantizes, gates, registers the build with lineage, and leaves
its result as JSON for the pod's termination message."""
import json

import pytest

from controller.k8s import quantize_entry
from controller.registry.conventions import TAG_PARENT_VERSION, TAG_RELEASE_ID
from controller.registry.mlflow_registry import MlflowRegistry
from quantize.tiny_model import build_tiny_llama
from tests.support.mlflow_server import mlflow_server  # noqa: F401

pytestmark = pytest.mark.integration


def test_the_job_quantizes_registers_the_build_and_reports(mlflow_server, tmp_path):  # noqa: F811
    registry = MlflowRegistry(mlflow_server.url)
    # untrained (seconds to build): this checks the Job's plumbing, not the quantizer's quality
    tiny = build_tiny_llama(tmp_path / "tiny", train_steps=0, num_layers=1)
    parent = registry.register_checkpoint("k8s-quantize", tiny)
    policy = {"quantize": {"max_calib_samples": 8, "max_calib_seq_len": 64},
              "quality": {"max_perplexity_increase_pct": 1000, "max_accuracy_drop_pct": 100,
                          "suite": "builtin:small"}}
    result_file = tmp_path / "termination-log"
    argv = ["--model", "k8s-quantize", "--version", parent, "--release", "rel-1",
            "--policy-json", json.dumps(policy), "--workdir", str(tmp_path / "work"),
            "--tracking-uri", mlflow_server.url, "--result-file", str(result_file)]
    code = quantize_entry.main(argv)
    doc = json.loads(result_file.read_text())
    assert code == 0 and doc["status"] == "succeeded", doc
    build = registry.get_version("k8s-quantize", doc["build_version"])
    assert build.tags[TAG_PARENT_VERSION] == parent and build.tags[TAG_RELEASE_ID] == "rel-1"

    assert quantize_entry.main([*argv[:3], "77", *argv[4:]]) == 1
    assert json.loads(result_file.read_text())["status"] == "error"
