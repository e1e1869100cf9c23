"""Text reminders and check-ins: the appointment time on a request, the outbox, request flags.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointment_requests") as batch:
        batch.add_column(sa.Column("appointment_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column(
                "appointment_version", sa.Integer(), nullable=False, server_default=sa.text("0")
            )
        )
    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("appointment_version", sa.Integer(), nullable=False),
        sa.Column("phone_e164", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("useful_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("twilio_sid", sa.String(length=64), nullable=True),
        sa.Column("twilio_status", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("context_recorded", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["appointment_requests.id"],
            name=op.f("fk_outbound_messages_request_id_appointment_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_messages")),
        sa.UniqueConstraint(
            "request_id",
            "kind",
            "appointment_version",
            name=op.f("uq_outbound_messages_request_id_kind_appointment_version"),
        ),
        sa.UniqueConstraint("twilio_sid", name=op.f("uq_outbound_messages_twilio_sid")),
    )
    for column in ("request_id", "phone_e164", "state", "next_attempt_at"):
        op.create_index(
            op.f(f"ix_outbound_messages_{column}"), "outbound_messages", [column], unique=False
        )
    op.create_table(
        "request_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("raised_by", sa.String(length=320), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["appointment_requests.id"],
            name=op.f("fk_request_flags_request_id_appointment_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_flags")),
    )
    for column in ("request_id", "cleared_at"):
        op.create_index(op.f(f"ix_request_flags_{column}"), "request_flags", [column], unique=False)


def downgrade() -> None:
    op.drop_table("request_flags")
    op.drop_table("outbound_messages")
    with op.batch_alter_table("appointment_requests") as batch:
        batch.drop_column("appointment_version")
        batch.drop_column("appointment_at")
