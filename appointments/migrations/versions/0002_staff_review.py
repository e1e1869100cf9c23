"""Create staff_users, request_status_changes and staff_audit_events for the staff area.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_login_count", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("session_token", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_users_username")),
    )

    op.create_table(
        "request_status_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("staff_username", sa.String(length=64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["appointment_requests.id"],
            name=op.f("fk_request_status_changes_request_id_appointment_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_status_changes")),
    )
    op.create_index(
        op.f("ix_request_status_changes_request_id"), "request_status_changes", ["request_id"]
    )

    op.create_table(
        "staff_audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("staff_username", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("request_reference", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_audit_events")),
    )
    for column in ("occurred_at", "staff_username", "action", "request_reference"):
        op.create_index(op.f(f"ix_staff_audit_events_{column}"), "staff_audit_events", [column])


def downgrade() -> None:
    for column in ("request_reference", "action", "staff_username", "occurred_at"):
        op.drop_index(op.f(f"ix_staff_audit_events_{column}"), table_name="staff_audit_events")
    op.drop_table("staff_audit_events")
    op.drop_index(op.f("ix_request_status_changes_request_id"), table_name="request_status_changes")
    op.drop_table("request_status_changes")
    op.drop_table("staff_users")
