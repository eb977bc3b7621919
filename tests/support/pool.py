"""A real local vLLM pool for tests, with its deployment table in a throwaway SQLite store."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import sessionmaker

from controller.pools.local_vllm import LocalVllmPool
from controller.store.db import make_engine, migrate
from controller.store.deployments import DeploymentStore


def make_local_pool(workdir: Path, **options) -> LocalVllmPool:
    engine = make_engine(f"sqlite:///{workdir / 'store.db'}")
    migrate(engine)
    return LocalVllmPool(DeploymentStore(sessionmaker(engine, expire_on_commit=False)), workdir, **options)
