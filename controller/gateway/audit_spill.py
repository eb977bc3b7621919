"""Where audit rows wait while the store is down: one JSON-lines file per gateway stream.

Rows are written already chained, so a spill file edited on disk fails `relctl audit verify`
once replayed. A live gateway holds an exclusive lock on its own file; at start a gateway
replays the files whose owner is gone (crashed with rows still spilled).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

Inserter = Callable[[object, list[dict]], None]     # (engine, rows): stores rows not yet stored


def default_spill_dir(db_url: str) -> Path:
    """RELCTL_AUDIT_SPILL_DIR, else beside a SQLite store, else the user's state folder."""
    if os.environ.get("RELCTL_AUDIT_SPILL_DIR"):
        return Path(os.environ["RELCTL_AUDIT_SPILL_DIR"])
    if db_url.startswith("sqlite:///") and db_url != "sqlite:///:memory:":
        return Path(db_url.removeprefix("sqlite:///")).resolve().parent / "audit-spill"
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "relctl" / "audit-spill"


class SpillFile:
    def __init__(self, folder: Path, stream: str, max_bytes: int):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{stream}.jsonl"
        self._max_bytes = max_bytes
        self._fh = open(self.path, "a+", encoding="utf-8")
        fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)      # ours while we live
        self.pending = self.path.stat().st_size > 0

    def append(self, rows: list[dict]) -> None:
        """Durable before it returns (fsync); over the size cap it refuses with OSError."""
        data = "".join(json.dumps(_to_json(r)) + "\n" for r in rows)
        if self._fh.tell() + len(data) > self._max_bytes:
            raise OSError(f"spill file {self.path} would exceed {self._max_bytes} bytes")
        self._fh.write(data)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.pending = True

    def replay(self, engine, insert_missing: Inserter) -> None:
        """Store what was spilled (raises while the store is still down), then empty the file."""
        if not self.pending:
            return
        self._fh.seek(0)
        insert_missing(engine, _read_rows(self._fh.read(), self.path))
        self._fh.truncate(0)
        self._fh.seek(0)
        self.pending = False

    def close(self) -> None:
        empty = not self.pending
        self._fh.close()
        if empty:
            self.path.unlink(missing_ok=True)


def replay_orphans(engine, folder: Path, insert_missing: Inserter) -> int:
    """Replay and remove the spill files of gateways that are gone; returns the rows replayed."""
    replayed = 0
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        with open(path, "r", encoding="utf-8") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue                                     # a live gateway's own file
            rows = _read_rows(fh.read(), path)
            try:
                insert_missing(engine, rows)
            except Exception as exc:
                log.error("audit spill replay failed; kept for the next start",
                          extra={"spill": str(path), "error": str(exc)})
                continue
            path.unlink()
            replayed += len(rows)
    if replayed:
        log.info("audit spill replayed", extra={"records": replayed})
    return replayed


def _to_json(row: dict) -> dict:
    return dict(row, at=row["at"].isoformat())


def _read_rows(text: str, path: Path) -> list[dict]:
    rows, torn = [], 0
    for line in text.splitlines():
        try:
            row = json.loads(line)
            rows.append(dict(row, at=datetime.fromisoformat(row["at"])))
        except (ValueError, KeyError, TypeError):
            torn += 1            # a write cut short by a crash: that record is lost, say so
    if torn:
        log.error("audit spill file has unreadable lines", extra={"spill": str(path), "lines": torn})
    return rows
