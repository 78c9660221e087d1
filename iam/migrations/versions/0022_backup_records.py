"""backup records (backups made, restores, restore drills)

Revision ID: 0022
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import iam.db

revision: str = "0022"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backup_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", iam.db.UTCDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("file", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_backup_records_kind", "backup_records", ["kind"])
    op.create_index("ix_backup_records_at", "backup_records", ["at"])


def downgrade() -> None:
    op.drop_index("ix_backup_records_at", table_name="backup_records")
    op.drop_index("ix_backup_records_kind", table_name="backup_records")
    op.drop_table("backup_records")
