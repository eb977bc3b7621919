"""Hash chains on the append-only tables: events (one chain per release) and audit records
(one chain per gateway stream). Rows written before this revision stay unchained (NULL).

Columns are added with plain ALTER TABLE ADD COLUMN (no batch copy), so the append-only
triggers of 0001 stay in place on SQLite.

Revision ID: 0003a
"""
import sqlalchemy as sa
from alembic import op

revision = "0003a"
down_revision = "0002"

_CHAIN = ("seq", "prev_sha256", "record_sha256")


def _chain_columns(seq_type) -> list[sa.Column]:
    return [sa.Column("seq", seq_type, nullable=True),
            sa.Column("prev_sha256", sa.String(64), nullable=True),
            sa.Column("record_sha256", sa.String(64), nullable=True)]


def upgrade() -> None:
    for column in _chain_columns(sa.Integer):
        op.add_column("events", column)
    op.create_index("ix_events_chain", "events", ["release_id", "seq"])
    op.add_column("audit_records", sa.Column("stream", sa.String(80), nullable=True))
    for column in _chain_columns(sa.BigInteger):
        op.add_column("audit_records", column)
    # Requests lost before this record (buffer full, store and spill file both failing).
    op.add_column("audit_records", sa.Column("dropped", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_audit_records_chain", "audit_records", ["stream", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_records_chain", "audit_records")
    op.drop_index("ix_events_chain", "events")
    # Plain DROP COLUMN (SQLite >= 3.35) keeps the append-only triggers, as upgrade() does.
    for table, columns in (("audit_records", ("stream", *_CHAIN, "dropped")), ("events", _CHAIN)):
        for column in columns:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
