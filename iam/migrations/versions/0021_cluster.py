"""several nodes: periodic task leases, readiness write probe

Revision ID: 0021
Revises: 0015a
Create Date: 2026-12-04 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import iam.db

revision: str = "0021"
down_revision: str | None = "0015a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "periodic_runs",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("due_at", iam.db.UTCDateTime(), nullable=False),
        sa.Column("running_by", sa.String(length=128), nullable=True),
        sa.Column("running_until", iam.db.UTCDateTime(), nullable=True),
        sa.Column("started_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("finished_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "node_probes",
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("checked_at", iam.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("node"),
    )


def downgrade() -> None:
    op.drop_table("node_probes")
    op.drop_table("periodic_runs")
