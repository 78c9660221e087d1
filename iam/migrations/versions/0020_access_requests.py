"""access requests

Revision ID: 0020
Revises: 0016
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import iam.db

revision: str = "0020"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("requested_item", sa.String(length=64), nullable=False),
        sa.Column("group", sa.String(length=256), nullable=False),
        sa.Column("person_sub", sa.String(length=64), nullable=False),
        sa.Column("person_username", sa.String(length=256), nullable=False),
        sa.Column("person_name", sa.String(length=256), nullable=False),
        sa.Column("employee_number", sa.String(length=64), nullable=True),
        sa.Column("department", sa.String(length=256), nullable=True),
        sa.Column("job_title", sa.String(length=256), nullable=True),
        sa.Column("requested_by", sa.String(length=256), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("duration_days", sa.Integer(), nullable=True),
        sa.Column("chain", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("approver", sa.String(length=256), nullable=True),
        sa.Column("step_started_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("step_due_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("reminded_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("escalated_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("escalated_to", sa.JSON(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("sod_conflicts", sa.JSON(), nullable=False),
        sa.Column("sod_exception", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=256), nullable=True),
        sa.Column("decided_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("decision_number", sa.String(length=128), nullable=True),
        sa.Column("granted_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("ends_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("ended_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", iam.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.create_index("ix_access_requests_person", ["person_sub", "status"], unique=False)
        batch_op.create_index("ix_access_requests_status_approver", ["status", "approver"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_access_requests_status_approver")
        batch_op.drop_index("ix_access_requests_person")
    op.drop_table("access_requests")
