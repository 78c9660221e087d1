"""security hardening: a replayed authorization code revokes its access token

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 14:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import iam.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("access_jti", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("access_expires_at", iam.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.drop_column("access_expires_at")
        batch_op.drop_column("access_jti")
