"""Shared pieces of the evaluation unit tests: a controller on SQLite, a suite, a stub gateway."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import httpx
from sqlalchemy.orm import sessionmaker

from controller.scheduler.runs import EvaluationEnv
from controller.scheduler.store import EvaluationStore
from controller.store.db import make_engine
from policies.evaluation import EvaluationPolicy
from tests.conftest import make_controller

MODEL = "chat"
CAPITAL = [{"type": "regex", "pattern": "^[A-Z]", "must_match": True}]


def write_suite(path: Path, items: int = 40) -> str:
    path.write_text("".join(json.dumps({"prompt": f"Q{i}: capital of France?", "answer": "Paris"}) + "\n"
                            for i in range(items)))
    return str(path)


class StubGateway:
    """An httpx transport answering every completion with `reply`, or with `error` (status, error type)
    in the gateway's error format: every answer while it is set, or answers number `error_requests`
    (counted from 1); `on_request(n)` runs before answer n."""

    def __init__(self, reply: str = "Paris"):
        self.reply, self.requests, self.on_request = reply, [], None
        self.error: tuple[int, str] | None = None
        self.error_requests: range | None = None
        self._lock = threading.Lock()
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            n = len(self.requests)
        if self.on_request:
            self.on_request(n)
        if self.error and (self.error_requests is None or n in self.error_requests):
            status, kind = self.error
            return httpx.Response(status, json={"error": {"message": "stub", "type": kind, "code": status}})
        return httpx.Response(200, json={"choices": [{"index": 0, "text": self.reply}]})


def make_env(tmp_path: Path, policy: EvaluationPolicy | None = None, gateway: StubGateway | None = None):
    ctx = make_controller(tmp_path)
    store = EvaluationStore(sessionmaker(make_engine(f"sqlite:///{tmp_path / 'relctl.db'}"), expire_on_commit=False))
    suite = write_suite(tmp_path / "capitals.jsonl")
    policy = policy or EvaluationPolicy(suites=[suite], parallel=2)
    logged: list[tuple] = []

    def log_run(*args) -> str:
        logged.append(args)
        return f"mlrun-{len(logged)}"
    env = EvaluationEnv(ctx=ctx, store=store, gateway_url="http://gateway.invalid", owner="test",
                        policy_of=lambda m: SimpleNamespace(evaluation=policy, validators=CAPITAL), log_run=log_run,
                        transport=(gateway or StubGateway()).transport, models=[MODEL])
    return env, suite, logged
