"""second factors (TOTP, recovery codes) and client minimum level of assurance

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 00:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import iam.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mfa_totp_credentials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("sub", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("digits", sa.Integer(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("created_at", iam.db.UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("last_used_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_mfa_totp_credentials_sub", "mfa_totp_credentials", ["sub"], unique=False)
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sub", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", iam.db.UTCDateTime(), nullable=False),
        sa.Column("used_at", iam.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sub", "code_hash", name="uq_mfa_recovery_codes_sub_hash"),
    )
    op.create_index(op.f("ix_mfa_recovery_codes_sub"), "mfa_recovery_codes", ["sub"], unique=False)
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("require_acr", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("require_acr")
    op.drop_index(op.f("ix_mfa_recovery_codes_sub"), table_name="mfa_recovery_codes")
    op.drop_table("mfa_recovery_codes")
    op.drop_index("ix_mfa_totp_credentials_sub", table_name="mfa_totp_credentials")
    op.drop_table("mfa_totp_credentials")
