"""The controller core: observed jobs, settled effects, one active release per model,
queued registry versions and the champion relctl last set.

Revision ID: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

ACTIVE_SQL = "phase NOT IN ('succeeded', 'rolled_back', 'failed', 'aborted')"


def _ts(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)


def upgrade() -> None:
    # Effects of a terminal phase are applied after the save; `settled` says they were.
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("settled", sa.Boolean, nullable=False, server_default=sa.true()))
    op.create_index("uq_one_active_release_per_model", "releases", ["model"], unique=True,
                    sqlite_where=sa.text(ACTIVE_SQL), postgresql_where=sa.text(ACTIVE_SQL))
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(120), primary_key=True),           # <release>:<kind>
        sa.Column("release_id", sa.String(40), nullable=False, index=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),            # running, succeeded, failed, cancelled
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(120), nullable=False),           # process that runs it
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        _ts("started_at", nullable=False),
        _ts("updated_at", nullable=False),
    )
    op.create_table(
        "queued_versions",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(40), primary_key=True),
        sa.Column("policy", sa.String(200)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),            # queued, started, superseded
        sa.Column("release_id", sa.String(40)),
        _ts("queued_at", nullable=False),
    )
    op.create_table(
        "champions",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("history", sa.JSON, nullable=False),                # versions that were champion before
        _ts("updated_at", nullable=False),
    )


def downgrade() -> None:
    for table in ("champions", "queued_versions", "jobs"):
        op.drop_table(table)
    op.drop_index("uq_one_active_release_per_model", "releases")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("settled")
