"""card sign-in: uploaded CAs, card bindings, account requests

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 00:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import iam.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "x509_uploaded_cas",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=1024), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("not_after", iam.db.UTCDateTime(), nullable=False),
        sa.Column("added_by", sa.String(length=256), nullable=False),
        sa.Column("added_at", iam.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "x509_bindings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sub", sa.String(length=64), nullable=False),
        sa.Column("thumbprint", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=1024), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=1024), nullable=False),
        sa.Column("not_after", iam.db.UTCDateTime(), nullable=False),
        sa.Column("match", sa.String(length=16), nullable=False),
        sa.Column("created_at", iam.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("last_used_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=256), nullable=True),
        sa.Column("revoke_reason", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("thumbprint"),
    )
    op.create_index("ix_x509_bindings_issuer_serial", "x509_bindings", ["issuer", "serial"])
    op.create_index("ix_x509_bindings_sub", "x509_bindings", ["sub"])
    op.create_table(
        "x509_account_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("thumbprint", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=1024), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=1024), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("proposed", sa.JSON(), nullable=False),
        sa.Column("requested_at", iam.db.UTCDateTime(), nullable=False),
        sa.Column("requested_ip", sa.String(length=64), nullable=True),
        sa.Column("decided_at", iam.db.UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=256), nullable=True),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("sub", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("thumbprint"),
    )
    op.create_index("ix_x509_account_requests_status", "x509_account_requests", ["status"])
    op.create_table(
        "x509_card_holders",
        sa.Column("sub", sa.String(length=64), nullable=False),
        sa.Column("first_used_at", iam.db.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", iam.db.UTCDateTime(), nullable=False),
        sa.Column("last_thumbprint", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("sub"),
    )


def downgrade() -> None:
    op.drop_table("x509_card_holders")
    op.drop_index("ix_x509_account_requests_status", table_name="x509_account_requests")
    op.drop_table("x509_account_requests")
    op.drop_index("ix_x509_bindings_sub", table_name="x509_bindings")
    op.drop_index("ix_x509_bindings_issuer_serial", table_name="x509_bindings")
    op.drop_table("x509_bindings")
    op.drop_table("x509_uploaded_cas")
