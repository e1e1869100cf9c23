"""Create appointment_requests and sms_opt_outs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appointment_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("date_of_birth_raw", sa.String(length=200), nullable=False),
        sa.Column("phone_e164", sa.String(length=20), nullable=False),
        sa.Column("phone_raw", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("email_raw", sa.String(length=400), nullable=True),
        sa.Column("last_period_start", sa.Date(), nullable=True),
        sa.Column("last_period_raw", sa.String(length=200), nullable=False),
        sa.Column("last_period_not_applicable", sa.Boolean(), nullable=False),
        sa.Column("suggested_window_start", sa.Date(), nullable=True),
        sa.Column("suggested_window_end", sa.Date(), nullable=True),
        sa.Column("preferred_times_raw", sa.Text(), nullable=False),
        sa.Column("preferred_dates", sa.JSON(), nullable=False),
        sa.Column("possibly_pregnant", sa.String(length=8), nullable=False),
        sa.Column("contrast_allergy", sa.String(length=8), nullable=False),
        sa.Column("pelvic_infection", sa.String(length=8), nullable=False),
        sa.Column("needs_attention", sa.Boolean(), nullable=False),
        sa.Column("referring_doctor", sa.String(length=200), nullable=True),
        sa.Column("contact_method", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_requests")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_appointment_requests_idempotency_key")
        ),
        sa.UniqueConstraint("reference", name=op.f("uq_appointment_requests_reference")),
    )
    op.create_index(
        op.f("ix_appointment_requests_conversation_id"),
        "appointment_requests",
        ["conversation_id"],
    )
    op.create_index(
        op.f("ix_appointment_requests_created_at"), "appointment_requests", ["created_at"]
    )
    op.create_index(
        op.f("ix_appointment_requests_needs_attention"),
        "appointment_requests",
        ["needs_attention"],
    )
    op.create_index(op.f("ix_appointment_requests_status"), "appointment_requests", ["status"])

    op.create_table(
        "sms_opt_outs",
        sa.Column("phone_e164", sa.String(length=20), nullable=False),
        sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("phone_e164", name=op.f("pk_sms_opt_outs")),
    )


def downgrade() -> None:
    op.drop_table("sms_opt_outs")
    op.drop_index(op.f("ix_appointment_requests_status"), table_name="appointment_requests")
    op.drop_index(
        op.f("ix_appointment_requests_needs_attention"), table_name="appointment_requests"
    )
    op.drop_index(op.f("ix_appointment_requests_created_at"), table_name="appointment_requests")
    op.drop_index(
        op.f("ix_appointment_requests_conversation_id"), table_name="appointment_requests"
    )
    op.drop_table("appointment_requests")
