"""Parent and build served side by side on the release's pool, only while they are measured.

Both servers may be kept (`keep`) so that, once the build is registered, the pool adopts the
one that will be deployed as the candidate's server — the build's, or the parent's when the
speed gate sends the full-precision candidate: one vLLM cold start less per release.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from controller.pools.base import Pool
from quantize.errors import QuantizeError
from quantize.scorer_served import ServedPair


def evaluation_target(evaluate_on: str, pool_name: str, can_serve: tuple[bool, str]) -> str:
    """'pool' or 'cpu' for policy quality.evaluate_on, given whether the pool can serve the build."""
    ok, why = can_serve
    if evaluate_on == "pool" and not ok:
        raise QuantizeError(f"policy quality.evaluate_on is 'pool' but pool {pool_name} cannot serve the build: "
                            f"{why}", cause="evaluation")
    return "pool" if evaluate_on == "pool" or (evaluate_on == "auto" and ok) else "cpu"


def evaluation_labels(release_id: str) -> dict[str, str]:
    """Stable labels, so a controller restarted mid-evaluation adopts the same servers."""
    return {"parent": f"{release_id}-eval-parent", "build": f"{release_id}-eval-build"}


POLL_SECONDS = 1.0   # how often starting servers are polled
ServerStates = Callable[[dict[str, str]], None]   # e.g. {"parent": "ready", "build": "starting"}


@contextmanager
def served_pair(pool: Pool, model: str, release_id: str, parent_dir: Path, build_dir: Path,
                timeout_s: float, cancel: threading.Event | None = None,
                keep: bool = False, on_progress: ServerStates | None = None) -> Iterator[ServedPair]:
    """Start both servers, wait until ready (or cancelled) and stop them after the measurement;
    with `keep` both stay up when all went well (one to be adopted, see hand_over).
    on_progress gets each server's state whenever one changes (starting -> ready)."""
    labels = evaluation_labels(release_id)
    ok = False
    try:
        pool.ensure(model, labels["parent"], parent_dir)
        pool.ensure(model, labels["build"], build_dir)
        urls = wait_all_ready(pool, model, labels, timeout_s, cancel, on_progress)
        yield ServedPair(urls["parent"], urls["build"], model, where=f"pool {pool.name}")
        ok = True
    finally:
        if not (ok and keep):
            for label in labels.values():
                pool.stop(model, label)


def hand_over(pool: Pool, model: str, release_id: str, side: str | None, version: str) -> None:
    """Adopt the kept evaluation server of `side` ("parent" or "build"; None: neither) as
    `version`'s server and stop the other, so no kept server holds a core for nothing."""
    for name, label in evaluation_labels(release_id).items():
        if not (name == side and pool.adopt(model, label, version)):
            pool.stop(model, label)


def wait_ready(pool: Pool, model: str, version: str, timeout_s: float,
               cancel: threading.Event | None = None) -> str:
    return wait_all_ready(pool, model, {version: version}, timeout_s, cancel)[version]


def wait_all_ready(pool: Pool, model: str, servers: dict[str, str], timeout_s: float,
                   cancel: threading.Event | None = None, on_progress: ServerStates | None = None) -> dict[str, str]:
    """Poll the servers ({name: version}) together until all are ready; their URLs by name.
    Fails at once when one fails, and after `timeout_s` naming those not ready."""
    deadline = time.monotonic() + timeout_s
    urls: dict[str, str] = {}
    reported: dict[str, str] = {}
    while True:
        if cancel is not None and cancel.is_set():
            raise QuantizeError(f"evaluation server {', '.join(servers.values())}: cancelled", cause="cancelled")
        for name, version in servers.items():
            if name not in urls:
                served = pool.status(model, version)
                if served is None or served.state == "failed":
                    detail = served.detail if served else "not started"
                    raise QuantizeError(f"evaluation server {version} failed: {detail}", cause="evaluation")
                if served.state == "ready":
                    urls[name] = served.url
        states = {name: "ready" if name in urls else "starting" for name in servers}
        if on_progress is not None and states != reported:
            reported = states
            on_progress(dict(states))
        if len(urls) == len(servers):
            return urls
        if time.monotonic() > deadline:
            waiting = [servers[name] for name in servers if name not in urls]
            raise QuantizeError(f"evaluation server {', '.join(waiting)} not ready after {timeout_s:.0f} s",
                                cause="evaluation")
        time.sleep(POLL_SECONDS)
