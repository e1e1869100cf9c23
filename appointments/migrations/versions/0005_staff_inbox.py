"""Create handoff_requests (the staff inbox, takeover holders) and unanswered_messages (insights).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handoff_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("request_reference", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("held_by", sa.String(length=64), nullable=True),
        sa.Column("held_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_staff_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_requests")),
    )
    op.create_index(
        op.f("ix_handoff_requests_conversation_id"), "handoff_requests", ["conversation_id"]
    )
    op.create_index(op.f("ix_handoff_requests_status"), "handoff_requests", ["status"])
    op.create_index(op.f("ix_handoff_requests_created_at"), "handoff_requests", ["created_at"])
    op.create_table(
        "unanswered_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unanswered_messages")),
    )
    op.create_index(
        op.f("ix_unanswered_messages_occurred_at"), "unanswered_messages", ["occurred_at"]
    )


def downgrade() -> None:
    op.drop_table("unanswered_messages")
    op.drop_table("handoff_requests")
