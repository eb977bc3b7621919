"""A controller killed with SIGKILL after it committed a decision and before it acted on it.

The release's world lives outside the controller process: routes in the real embedded
gateway (its own process), the decision in the SQLite store. The child process commits an
abort and dies; a new controller on the same store must find the abort saved but not yet
applied, apply it (the candidate's weight in the gateway goes to 0) and record it once.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from controller.domain.phases import Phase
from controller.reconcile.loop import reconcile
from controller.traffic.embedded import EmbeddedGatewayRouter
from tests.conftest import make_controller
from tests.support.gateway_process import GatewayProcess
from tests.support.kill_between_save_and_effects import candidate_weight

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "sigkill-token"


@pytest.fixture
def gateway(tmp_path):
    proc = GatewayProcess(tmp_path / "gateway", TOKEN, "--db-url", f"sqlite:///{tmp_path}/gateway.db").start()
    try:
        yield proc.url
    finally:
        proc.stop()


def test_sigkill_after_the_save_leaves_the_decision_to_the_next_controller(tmp_path, gateway):
    child = subprocess.run([sys.executable, "-m", "tests.support.kill_between_save_and_effects", str(tmp_path),
                            gateway, TOKEN], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    release_id = child.stdout.split()[0]

    router = EmbeddedGatewayRouter(gateway, TOKEN)
    ctx = make_controller(tmp_path, router=router)                 # the restarted controller ...
    for version in ("1", "2"):
        ctx.pool.ensure("chat", version, None)                     # ... adopts the running servers
    saved = ctx.store.get(release_id)
    assert saved.phase == Phase.ABORTED and not saved.settled      # decided and committed ...
    assert candidate_weight(router, "chat") > 0                    # ... not acted on: the canary still serves
    assert release_id in ctx.store.to_reconcile()

    reconcile(ctx, release_id)
    assert candidate_weight(router, "chat") == 0.0                 # the abort's effect, applied now
    assert router.current("chat").weights.get("stable") == 100.0
    assert ctx.store.get(release_id).settled and release_id not in ctx.store.to_reconcile()
    transitions = [e["to_phase"] for e in ctx.store.events(release_id) if e["kind"] == "transition"]
    assert transitions.count("aborted") == 1
