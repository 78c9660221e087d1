"""policy acknowledgement (R-SSO-6) and the portal's application fields

Revision ID: 0015
Revises: 0017
Create Date: 2026-12-04 17:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import iam.db

revision: str = "0015"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_acceptances",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sub", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("accepted_at", iam.db.UTCDateTime(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("policy_acceptances", schema=None) as batch_op:
        batch_op.create_index("ix_policy_acceptances_sub_version", ["sub", "version"], unique=True)
        batch_op.create_index(batch_op.f("ix_policy_acceptances_version"), ["version"], unique=False)
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("logo_uri", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("launch_uri", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("allowed_groups", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("clients", schema=None) as batch_op:
        # the default filled the existing rows; new rows get theirs from the model
        batch_op.alter_column("allowed_groups", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("allowed_groups")
        batch_op.drop_column("launch_uri")
        batch_op.drop_column("logo_uri")
        batch_op.drop_column("description")
    with op.batch_alter_table("policy_acceptances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_acceptances_version"))
        batch_op.drop_index("ix_policy_acceptances_sub_version")
    op.drop_table("policy_acceptances")
