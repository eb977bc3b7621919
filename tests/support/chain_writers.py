"""Writers racing on one release's event chain, each on its own engine (as separate controller
processes would): half of them take ReleaseStore.save's shape (the optimistic UPDATE first),
the others only append events."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from controller.store.db import make_engine
from controller.store.models import EventRow, ReleaseRow

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def race_chain_writers(url: str, release_id: str, writers: int, per_writer: int) -> list[BaseException]:
    """Run the writers to the end; the errors they raised (none expected)."""
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        engine = make_engine(url)
        try:
            barrier.wait()
            for i in range(per_writer):
                with sessionmaker(engine).begin() as s:
                    if n % 2:
                        s.execute(update(ReleaseRow).where(ReleaseRow.id == release_id)
                                  .values(row_version=ReleaseRow.row_version + 1))
                    s.add(EventRow(release_id=release_id, at=NOW, kind="info", reason=f"{n}-{i}", data={"i": i}))
        except BaseException as exc:   # noqa: BLE001 - returned to the test
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
