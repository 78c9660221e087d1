"""password expiry reminders, birth date, in-flight sign-in attempts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 23:59:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import iam.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "password_reminders",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("sub", sa.String(length=64), nullable=False),
        sa.Column("expires_at", iam.db.UTCDateTime(), nullable=False),
        sa.Column("days_before", sa.Integer(), nullable=False),
        sa.Column("sent_at", iam.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sub", "expires_at", "days_before"),
    )
    with op.batch_alter_table("identities") as batch_op:
        batch_op.add_column(sa.Column("birth_date", sa.Date(), nullable=True))
    with op.batch_alter_table("lockout_counters") as batch_op:
        batch_op.add_column(sa.Column("in_flight", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("lockout_counters") as batch_op:
        batch_op.drop_column("in_flight")
    with op.batch_alter_table("identities") as batch_op:
        batch_op.drop_column("birth_date")
    op.drop_table("password_reminders")
