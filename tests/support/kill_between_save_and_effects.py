"""Child process of tests/integration/test_sigkill_between_save_and_effects.py.

Drives one release into canary against the real gateway (store: the SQLite file given; pool,
registry and metrics: the fakes), asks for an abort, and on the tick that decides it kills
itself with SIGKILL right after the decision is committed and before any effect is applied.

    python -m tests.support.kill_between_save_and_effects WORKDIR GATEWAY_URL TOKEN
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from controller.domain.phases import Phase
from controller.domain.release import UserAction
from controller.reconcile import loop
from controller.traffic.embedded import EmbeddedGatewayRouter
from tests.conftest import make_controller

POLICY = {"quantize": {"enabled": False}, "shadow": {"duration_seconds": 10},
          "canary": {"steps": [20, 50], "step_seconds": 600},
          "analysis": {"min_requests": 20, "min_soak_seconds": 5, "latency_metrics": []}}


def candidate_weight(router: EmbeddedGatewayRouter, model: str) -> float:
    route = router.current(model)
    return route.weights.get("candidate", 0.0) if route else 0.0


def main(workdir: Path, gateway_url: str, token: str) -> None:
    router = EmbeddedGatewayRouter(gateway_url, token)
    ctx = make_controller(workdir, router=router)
    ctx.champions.record("chat", "1", ctx.clock())
    r = ctx.store.create("chat", "2", "1", POLICY, ctx.clock())
    for _ in range(200):
        ctx.clock.advance(2.0)
        to_candidate = round(100 * candidate_weight(router, "chat") / 100)
        ctx.metrics.add("stable", 100 - to_candidate)
        ctx.metrics.add("candidate", to_candidate)
        r = loop.reconcile(ctx, r.id)
        if r.phase == Phase.CANARY and candidate_weight(router, "chat") > 0:
            break
        ctx.jobs.join(30)    # the deployment's download job (a thread) ends before the next fast tick
    else:
        sys.exit(f"never reached a routed canary: {r.phase} {r.reason}")
    print(r.id, flush=True)
    ctx.store.request_action(r.id, UserAction.ABORT, ctx.clock())
    loop.apply_effects = lambda *_a, **_k: os.kill(os.getpid(), signal.SIGKILL)
    loop.reconcile(ctx, r.id)
    sys.exit("still alive after the save")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
