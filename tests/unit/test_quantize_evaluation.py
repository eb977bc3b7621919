"""Where a build is measured (policy quality.evaluate_on) and how a vLLM answer is read.

The served scorer's protocol handling is checked here against canned vLLM responses (httpx
MockTransport); its agreement with the in-process scorer is checked against a real vLLM
server in tests/e2e/test_served_evaluation.py.
"""
from __future__ import annotations

import json
import math

import httpx
import pytest

from controller.reconcile.evaluation_servers import evaluation_target
from policies.schema import QualityGate
from pydantic import ValidationError
from quantize.errors import QuantizeError
from quantize.report import perplexity, token_windows
from quantize.scorer_served import ServedScorer

CAN, CANNOT = (True, "GPU pool"), (False, "no 4-bit kernel on this CPU")


@pytest.mark.parametrize("evaluate_on, can_serve, expected", [
    ("auto", CAN, "pool"), ("auto", CANNOT, "cpu"), ("cpu", CAN, "cpu"), ("cpu", CANNOT, "cpu"),
    ("pool", CAN, "pool"),
])
def test_evaluation_target(evaluate_on, can_serve, expected) -> None:
    assert evaluation_target(evaluate_on, "p", can_serve) == expected


def test_pool_evaluation_on_a_pool_that_cannot_serve_the_build_names_the_reason() -> None:
    with pytest.raises(QuantizeError, match="evaluate_on is 'pool' but pool cpu-a cannot serve the build: no 4-bit"):
        evaluation_target("pool", "cpu-a", CANNOT)


def test_policy_rejects_unknown_evaluation_place() -> None:
    assert QualityGate().evaluate_on == "auto"
    with pytest.raises(ValidationError, match="evaluate_on"):
        QualityGate(evaluate_on="gpu")


def _scorer(handler) -> ServedScorer:
    scorer = ServedScorer("http://vllm.test", "m")
    scorer._http = httpx.Client(transport=httpx.MockTransport(handler))
    return scorer


def test_window_nll_sums_the_prompt_tokens_own_logprobs() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        # vLLM: one entry per prompt token, None for the first; keys are token ids; top-1 may differ
        logprobs = [None, {"7": {"logprob": -0.5}, "1": {"logprob": -0.1}}, {"9": {"logprob": -2.0}}]
        return httpx.Response(200, json={"choices": [{"text": "x", "prompt_logprobs": logprobs}]})

    assert _scorer(handler).window_nll([3, 7, 9]) == pytest.approx(2.5)
    assert seen["prompt"] == [3, 7, 9] and seen["prompt_logprobs"] == 0 and seen["model"] == "m"


def test_perplexity_is_exp_of_mean_nll_over_all_windows() -> None:
    class Fixed:
        def window_nll(self, window):
            return 0.5 * (len(window) - 1)

    ppl, tokens = perplexity(Fixed(), [[1, 2, 3], [4, 5]])
    assert tokens == 3 and ppl == pytest.approx(math.exp(0.5))


def test_token_windows_overlap_by_one_token_and_end_with_eos() -> None:
    class Tok:
        eos_token_id = 0

        def __call__(self, texts, add_special_tokens):
            return {"input_ids": [[1, 2, 3, 4], [5, 6]]}

    assert token_windows(Tok(), ["a", "b"], window=3) == [[1, 2, 3, 4], [4, 0, 5, 6], [6, 0]]


@pytest.mark.parametrize("response, message", [
    (httpx.Response(200, json={"choices": [{"text": "x"}]}), "no prompt_logprobs"),
    (httpx.Response(400, text="prompt too long"), "HTTP 400: prompt too long"),
    (httpx.Response(200, json={"choices": [{"prompt_logprobs": [None, {"5": {"logprob": -1}}]}]}),
     "no finite logprob for prompt token 2"),
])
def test_bad_server_answers_are_evaluation_errors(response, message) -> None:
    with pytest.raises(QuantizeError, match=message) as info:
        _scorer(lambda request: response).window_nll([1, 2])
    assert info.value.cause == "evaluation"


def test_unreachable_server_is_an_evaluation_error() -> None:
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(QuantizeError, match="unreachable"):
        _scorer(refuse).answers(["q?"], 4)


def test_answers_are_batched_and_put_back_in_prompt_order() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body["prompt"])
        choices = [{"index": i, "text": f" {p}!"} for i, p in enumerate(body["prompt"])]
        return httpx.Response(200, json={"choices": list(reversed(choices))})   # order comes from "index"

    scorer = _scorer(handler)
    scorer.batch = 2
    assert scorer.answers(["a", "b", "c"], 4) == [" a!", " b!", " c!"]
    assert sorted(seen) == [["a", "b"], ["c"]]


def test_missing_choices_are_an_evaluation_error() -> None:
    with pytest.raises(QuantizeError, match="answered 1 choices for 2 prompts"):
        one = httpx.Response(200, json={"choices": [{"index": 0, "text": "x"}]})
        _scorer(lambda request: one).answers(["a", "b"], 4)
