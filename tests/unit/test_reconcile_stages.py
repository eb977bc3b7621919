"""The stages' decisions from a build's report: the speed gate's verdict fails the release or
deploys the full-precision candidate, as the policy says."""
from datetime import datetime, timezone

from controller.domain.phases import Phase
from controller.domain.release import BuildOutcome, Release
from controller.reconcile.deploy_stage import choose_artifact
from controller.reconcile.quantize_stage import check_gate
from policies.schema import Policy

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
PASSING = {"parent_perplexity": 2.0, "build_perplexity": 2.0, "perplexity_increase_pct": 0.0,
           "parent_accuracy": 0.7, "build_accuracy": 0.7, "accuracy_drop_pct": 0.0, "eval_items": 6044,
           "heldout_tokens": 4096, "parent_layers_bytes_fp16": 1000, "build_layers_bytes": 260,
           "weight_size_ratio": 0.26, "parent_only_correct": 0, "build_only_correct": 0}
POLICY = Policy.model_validate({"quality": {"on_inconclusive": "pass"}})


def build(speed=None):
    return BuildOutcome(True, "3", {"quality": PASSING, "speed": speed})


def release(speed=None):
    return Release("rel-1", "chat", "2", "1", Phase.DEPLOYING, T0,
                   status={"build": {"version": "3", "report": {"quality": {"quant_method": "awq"}, "speed": speed}}})


def test_a_build_slower_than_allowed_fails_the_gate_with_the_table():
    slow = {"passed": False, "action": "fail", "reason": "TTFT p99 +40% at concurrency 8 (limit 25%)"}
    outcome = check_gate(release(), build(slow), POLICY)
    assert not outcome.ok and "speed gate" in outcome.reason and "+40%" in outcome.reason


def test_a_build_as_fast_as_allowed_passes(ctx):
    fast = {"passed": True, "action": "proceed", "reason": "within limits"}
    assert check_gate(release(), build(fast), POLICY).ok
    assert choose_artifact(ctx, release(fast))["version"] == "3"


def test_a_slower_build_under_deploy_full_precision_deploys_the_parent(ctx):
    slow = {"passed": False, "action": "deploy_full_precision", "reason": "tokens/s 0.6x of the parent (min 0.8x)"}
    choice = choose_artifact(ctx, release(slow))
    assert choice["version"] == "2" and choice["quantization"] == "none" and "0.6x" in choice["reason"]
