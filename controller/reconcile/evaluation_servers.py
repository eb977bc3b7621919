"""Parent and build served side by side on the release's pool, only while they are measured."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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


@contextmanager
def served_pair(pool: Pool, model: str, release_id: str, parent_dir: Path, build_dir: Path,
                timeout_s: float) -> Iterator[ServedPair]:
    """Start both servers (versions '<release>-eval-parent/-build'), wait until ready, stop them after.

    The labels are stable, so a controller restarted mid-evaluation adopts the same servers."""
    labels = {"parent": f"{release_id}-eval-parent", "build": f"{release_id}-eval-build"}
    try:
        pool.ensure(model, labels["parent"], parent_dir)
        pool.ensure(model, labels["build"], build_dir)
        urls = {side: wait_ready(pool, model, label, timeout_s) for side, label in labels.items()}
        yield ServedPair(urls["parent"], urls["build"], model, where=f"pool {pool.name}")
    finally:
        for label in labels.values():
            pool.stop(model, label)


def wait_ready(pool: Pool, model: str, version: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        served = pool.status(model, version)
        if served is None or served.state == "failed":
            detail = served.detail if served else "not started"
            raise QuantizeError(f"evaluation server {version} failed: {detail}", cause="evaluation")
        if served.state == "ready":
            return served.url
        if time.monotonic() > deadline:
            raise QuantizeError(f"evaluation server {version} not ready after {timeout_s:.0f} s",
                                cause="evaluation")
        time.sleep(1.0)
