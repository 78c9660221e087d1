"""refresh tokens: the successor a rotation issued, and why a token was revoked

Revision ID: 0023
Revises: 0021
Create Date: 2026-12-04 20:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("replaced_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("revoked_reason", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("revoked_reason")
        batch.drop_column("replaced_by")
