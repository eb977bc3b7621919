"""The pool interface: where model servers run, and what they can serve."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Served:
    """A model server as the pool sees it now."""
    model: str
    version: str
    url: str
    state: str            # "starting" | "ready" | "failed" | "stopped"
    detail: str = ""


class Pool(Protocol):
    name: str
    # True when the pool's servers download (and verify) the version themselves, e.g. Kubernetes
    # pods with an init container: the controller then keeps no copy and `ensure` gets no folder.
    fetches_checkpoints: bool

    def can_serve(self, quantization: str | None) -> tuple[bool, str]:
        """Whether this pool can serve a checkpoint of that quantization (None = full precision), and why."""

    def ensure(self, model: str, version: str, artifact_dir: Path | None) -> Served:
        """Start the server if it is not running (idempotent; adopts a server started before a restart)."""

    def adopt(self, model: str, label: str, version: str) -> bool:
        """Serve `version` from the live server started as `label` (same artifact, same settings), so the
        build's evaluation server becomes the candidate's without a cold start. False when the pool
        cannot (no such server, or `version` already has one): the caller then starts one as usual."""

    def status(self, model: str, version: str) -> Served | None: ...

    def stop(self, model: str, version: str) -> None: ...

    def stop_all(self) -> None: ...
