"""audit operations: SIEM cursors, weekly archives, monthly reviews

Revision ID: 0018
Revises: 0022
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import iam.db

revision: str = "0018"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "siem_cursors",
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_seq", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", iam.db.UTCDateTime(), nullable=True),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.Column("last_success_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", iam.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("destination"),
    )
    op.create_table(
        "audit_archives",
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=128), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=True),
        sa.Column("written_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("alerted_at", iam.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("week"),
    )
    op.create_table(
        "audit_reviews",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("signed_by", sa.String(length=256), nullable=True),
        sa.Column("signed_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("reminded_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("reminders", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("month"),
    )


def downgrade() -> None:
    op.drop_table("audit_reviews")
    op.drop_table("audit_archives")
    op.drop_table("siem_cursors")
