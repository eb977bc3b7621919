"""Scheduled evaluations: their runs (history, one run per scheduled fire time) and a lock per model
(controller/scheduler/store.py). APScheduler keeps its own job table (apscheduler_jobs), created by
its SQLAlchemyJobStore.

Revision ID: 0003ev
"""
import sqlalchemy as sa
from alembic import op

revision = "0003ev"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "evaluation_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False, index=True),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("owner", sa.String(120), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("figures", sa.JSON, nullable=False),
        sa.Column("drift", sa.JSON, nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.UniqueConstraint("model", "scheduled_for", name="uq_evaluation_fire_time"),
    )
    op.create_table(
        "evaluation_locks",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("owner", sa.String(120), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("evaluation_locks")
    op.drop_table("evaluation_runs")
