"""Everything a reconcile tick talks to, gathered in one place (injected, so tests can swap parts)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from controller.analysis.providers.base import MetricProvider
from controller.pools.base import Pool
from controller.reconcile.jobs import JobRunner
from controller.registry.base import Registry
from controller.store.audit import AuditStore
from controller.store.registry_state import ChampionStore, VersionQueue
from controller.store.releases import ReleaseStore
from controller.traffic.base import TrafficRouter


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Controller:
    store: ReleaseStore
    registry: Registry
    pool: Pool
    router: TrafficRouter
    metrics: MetricProvider
    workdir: Path
    jobs: JobRunner
    champions: ChampionStore
    queue: VersionQueue
    audit: AuditStore | None = None
    clock: Callable[[], datetime] = field(default=utc_now)
    # Where builds run (settings quantize_runner): None, the quantize subprocess here; else a runner
    # of quantization Jobs on the cluster (controller/k8s/quantize_job.py).
    quantize_jobs: Any = None

    def checkpoint_path(self, model: str, version: str) -> Path:
        """Where a registry version's files are kept locally (see download_checkpoint)."""
        return self.workdir / "checkpoints" / model / version

    def download_checkpoint(self, model: str, version: str) -> Path:
        """Local copy of a registry version, downloaded once and checked against its SHA-256 manifest
        every time it is about to be loaded (long: call it from a job). IntegrityError names the file."""
        from controller.registry.integrity import TAG_DIGEST, verify_download

        path = self.registry.download(model, version, self.checkpoint_path(model, version))
        tags = self.registry.get_version(model, version).tags
        if TAG_DIGEST in tags:   # versions registered before manifests existed carry none
            verify_download(path, tags)
        return path
