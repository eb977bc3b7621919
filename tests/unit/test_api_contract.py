"""Contract test: schemathesis over the live OpenAPI document of the REST API.

The same engine as `schemathesis run --checks all`: every operation is called with
generated valid and invalid input (examples, coverage, fuzzing and stateful phases), with
no token and with each role's token, and every check runs: no 5xx, status codes, content
types, headers and bodies as documented, allowed methods, auth enforced (a protected call
without the token must be refused). The controller behind the app is the one of
test_api.py: in-memory registry and router, real SQLite store.
"""
import pytest
import schemathesis
from schemathesis.engine import Status, events, from_schema

from controller.api.app import create_app
from controller.registry.webhook import webhook_router
from tests.unit.test_api import TOKENS, client  # noqa: F401  (fixture: app, store, doubles)

ROLE_TOKENS = {"no-token": None, **{role: tok for tok, role in TOKENS.items()}}
# A body the schema allows can still be refused for what only the registry knows (unknown
# model or version, version already champion, unknown policy name): a 422 by design.
ACCEPTED_FOR_VALID_INPUT = ["2xx", "401", "403", "404", "409", "422"]


def run_schemathesis(app, token: str | None, max_examples: int = 10) -> tuple[int, list[str]]:
    config = {"generation": {"mode": "all", "max-examples": max_examples, "deterministic": True},
              "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_FOR_VALID_INPUT}}}
    if token:
        config["headers"] = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis.Config.from_dict(config))
    scenarios, problems = 0, []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            scenarios += 1
            problems += [f"{event.label}: {node.name}: {node.failure_info.failure.title}\n"
                         f"    {node.failure_info.code_sample}"
                         for nodes in event.recorder.checks.values() for node in nodes
                         if node.status == Status.FAILURE and node.failure_info]
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            problems.append(f"engine error: {event.info.format() if hasattr(event, 'info') else event}")
    return scenarios, problems


@pytest.mark.parametrize("role", list(ROLE_TOKENS))
def test_api_honours_its_openapi_contract(client, role):  # noqa: F811
    hook = webhook_router("hook-secret", lambda event: None, watched=set())   # signed calls only
    scenarios, problems = run_schemathesis(create_app(client.ctx, TOKENS, (hook,)), ROLE_TOKENS[role])
    assert scenarios >= 20                  # every operation was exercised
    assert problems == [], "\n".join(dict.fromkeys(problems))


def test_the_contract_test_catches_a_broken_route(client):  # noqa: F811
    app = create_app(client.ctx, TOKENS)

    @app.get("/api/v1/broken")
    def broken(n: int) -> dict:
        return {"inverse": 1 / n}          # n = 0: an unhandled error, a 500
    _, problems = run_schemathesis(app, "v-tok", max_examples=3)
    assert any("division by zero" in p for p in problems), problems
