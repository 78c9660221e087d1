"""jobs: a priority (a leaver before a batch of joiners)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 21:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="100"))
    op.create_index("ix_jobs_due_priority", "jobs", ["status", "priority", "run_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_due_priority", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("priority")
