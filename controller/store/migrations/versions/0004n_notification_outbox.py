"""The notification outbox (controller/notify/outbox.py): one row per event and subscriber,
delivered, retried with backoff, or given up on by controller/notify/deliver.py.

Revision ID: 0004n
"""
import sqlalchemy as sa
from alembic import op

revision = "0004n"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(36), nullable=False, unique=True),
        sa.Column("subscriber", sa.String(64), nullable=False),
        sa.Column("release_id", sa.String(40), nullable=False),
        sa.Column("event_id", sa.Integer, nullable=False),
        sa.Column("event_kind", sa.String(40), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(120), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_outbox_due", "notification_outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_order", "notification_outbox", ["subscriber", "release_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_order", "notification_outbox")
    op.drop_index("ix_outbox_due", "notification_outbox")
    op.drop_table("notification_outbox")
