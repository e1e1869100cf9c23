"""Create staff_login_failures: sign-in lockouts per account and client address.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_login_failures",
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_user_id"],
            ["staff_users.id"],
            name=op.f("fk_staff_login_failures_staff_user_id_staff_users"),
        ),
        sa.PrimaryKeyConstraint(
            "staff_user_id", "client_address", name=op.f("pk_staff_login_failures")
        ),
    )


def downgrade() -> None:
    op.drop_table("staff_login_failures")
