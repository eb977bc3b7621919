"""Initial schema: releases, events, deployments, audit records, registry cursor.

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _ts(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False, index=True),
        sa.Column("candidate_version", sa.String(40), nullable=False),
        sa.Column("stable_version", sa.String(40)),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("phase", sa.String(20), nullable=False, index=True),
        sa.Column("step_index", sa.Integer, nullable=False),
        _ts("phase_started_at", nullable=False),
        sa.Column("paused_from", sa.String(20)),
        sa.Column("requested_action", sa.String(20)),
        sa.Column("status", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("release_id", sa.String(40), sa.ForeignKey("releases.id"), nullable=False, index=True),
        _ts("at", nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("from_phase", sa.String(20)),
        sa.Column("to_phase", sa.String(20)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("dedup_key", sa.String(120)),
        sa.UniqueConstraint("release_id", "dedup_key", name="uq_event_dedup"),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("pool", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("artifact", sa.Text, nullable=False),
        sa.Column("url", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        _ts("created_at", nullable=False),
    )
    op.create_table(
        "audit_records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _ts("at", nullable=False, index=True),
        sa.Column("model", sa.String(200), nullable=False, index=True),
        sa.Column("release_id", sa.String(40), nullable=False, index=True),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("track", sa.String(20), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False, index=True),
        sa.Column("response_sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "registry_seen",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(40), primary_key=True),
        _ts("seen_at", nullable=False),
    )


    _append_only("events")
    _append_only("audit_records")


def _append_only(table: str) -> None:
    """The audit trail cannot be rewritten, even by a buggy caller: the database refuses."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE OR REPLACE FUNCTION relctl_append_only() RETURNS trigger AS $$ BEGIN "
                   "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql")
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION relctl_append_only()")


def downgrade() -> None:
    for table in ("registry_seen", "audit_records", "deployments", "events", "releases"):
        op.drop_table(table)
