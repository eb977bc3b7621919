"""`relctl audit verify`: walk the hash chains again and report the first break of each.

A break is a row whose contents no longer match its hash (changed), whose `prev_sha256` is
not the hash of the row before it, or whose `seq` does not follow (a row removed, inserted or
reordered). Gap records (requests the gateway could not keep) are listed, not counted as
breaks: they are part of the chain. What a chain cannot show on its own is its tail being cut
off: compare the heads printed here with ones recorded earlier elsewhere.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from controller.store.chain import AUDIT_FIELDS, EVENT_FIELDS, GENESIS, record_hash, row_fields, utc
from controller.store.models import AuditRow, EventRow


@dataclass
class Break:
    table: str
    chain: str          # release id (events) or gateway stream (audit_records)
    row_id: int
    seq: int
    at: str
    reason: str


@dataclass
class TableReport:
    table: str
    chains: int = 0
    rows: int = 0
    unchained: int = 0                                  # written before the chains existed (0003a)
    breaks: list[Break] = field(default_factory=list)   # the first break of each broken chain
    gaps: list[dict] = field(default_factory=list)      # declared losses (audit gap records)
    heads: dict[str, str] = field(default_factory=dict)


@dataclass
class _Walk:
    """One chain being checked; with `since` its first row is trusted as the anchor."""
    prev: str | None
    seq: int | None
    broken: bool = False


def verify_table(engine: Engine, row_type, key: str, names: tuple[str, ...],
                 since: datetime | None = None) -> TableReport:
    table = row_type.__table__
    report = TableReport(table.name)
    q = select(table).where(table.c.seq.is_not(None)).order_by(table.c[key], table.c.seq, table.c.id)
    if since is not None:   # from each chain's first row at or after `since`, then every later row
        later = table.alias()
        first = select(func.min(later.c.seq)).where(later.c[key] == table.c[key], later.c.at >= since)
        q = q.where(table.c.seq >= first.scalar_subquery())
    walks: dict[str, _Walk] = {}
    with engine.connect() as conn:
        report.unchained = conn.scalar(select(func.count()).select_from(table).where(table.c.seq.is_(None)))
        for row in conn.execution_options(stream_results=True, yield_per=1000).execute(q).mappings():
            chain = row[key]
            walk = walks.setdefault(chain, _Walk(None, None) if since else _Walk(GENESIS, 0))
            report.rows += 1
            if not walk.broken:
                _check_row(report, walk, chain, row, names)
            if row.get("dropped"):
                report.gaps.append(dict(chain=chain, seq=row["seq"], at=utc(row["at"]).isoformat(),
                                        dropped=row["dropped"]))
    report.chains = len(walks)
    if row_type is AuditRow:
        report.heads = {chain: walk.prev for chain, walk in walks.items()}
    return report


def _check_row(report: TableReport, walk: _Walk, chain: str, row, names: tuple[str, ...]) -> None:
    reason = None
    if walk.seq is not None and row["seq"] != walk.seq + 1:
        reason = (f"seq {row['seq']} repeats" if row["seq"] <= walk.seq
                  else f"seq jumps from {walk.seq} to {row['seq']}: rows removed")
    elif walk.prev is not None and row["prev_sha256"] != walk.prev:
        reason = "prev_sha256 is not the previous row's hash: a row before it was removed or changed"
    elif record_hash(row["prev_sha256"], row_fields(dict(row), names)) != row["record_sha256"]:
        reason = "contents do not match record_sha256: the row was changed"
    if reason:
        walk.broken = True
        report.breaks.append(Break(report.table, chain, row["id"], row["seq"], utc(row["at"]).isoformat(), reason))
        return
    walk.prev, walk.seq = row["record_sha256"], row["seq"]


def verify_all(engine: Engine, since: datetime | None = None) -> dict:
    """Both tables; `ok` is false when any chain is broken."""
    reports = [verify_table(engine, EventRow, "release_id", EVENT_FIELDS, since),
               verify_table(engine, AuditRow, "stream", AUDIT_FIELDS, since)]
    return {"ok": not any(r.breaks for r in reports),
            "since": utc(since).isoformat() if since else None,
            **{r.table: asdict(r) for r in reports}}
