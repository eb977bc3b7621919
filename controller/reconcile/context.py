"""Everything a reconcile tick talks to, gathered in one place (injected, so tests can swap parts)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from controller.pools.base import Pool
from controller.store.releases import ReleaseStore
from controller.traffic.base import TrafficRouter


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Controller:
    store: ReleaseStore
    registry: object                    # controller.registry.mlflow_registry.MlflowRegistry
    pool: Pool
    router: TrafficRouter
    metrics: object                     # controller.analysis.providers.base.MetricProvider
    workdir: Path
    audit: object | None = None         # controller.store.audit.AuditStore
    clock: Callable[[], datetime] = field(default=utc_now)

    def checkpoint_dir(self, model: str, version: str) -> Path:
        """Local copy of a registry version, downloaded once."""
        dest = self.workdir / "checkpoints" / model / version
        return self.registry.download(model, version, dest)
