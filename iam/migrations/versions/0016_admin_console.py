"""administration console: audit search indexes, audit chain verifications

Every filter of the console's audit search (event, actor, subject, application, address) leads
an index ending in (at, id), the order the search pages in (keyset: newest first, never
OFFSET). They replace the single-column indexes they begin with.

Revision ID: 0016
Revises: 0018
Create Date: 2026-12-04 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import iam.db

revision: str = "0016"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = {
    "ix_audit_events_at": ["at"],
    "ix_audit_events_event": ["event"],
    "ix_audit_events_actor": ["actor"],
    "ix_audit_events_subject": ["subject"],
    "ix_audit_events_client_id": ["client_id"],
}
NEW = {
    "ix_audit_events_at_id": ["at", "id"],
    "ix_audit_events_event_at": ["event", "at", "id"],
    "ix_audit_events_actor_at": ["actor", "at", "id"],
    "ix_audit_events_subject_at": ["subject", "at", "id"],
    "ix_audit_events_client_at": ["client_id", "at", "id"],
    "ix_audit_events_ip_at": ["ip", "at", "id"],
}


def upgrade() -> None:
    op.create_table(
        "audit_verifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", iam.db.UTCDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("checked", sa.BigInteger(), nullable=False),
        sa.Column("unsealed", sa.BigInteger(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for name, columns in NEW.items():
        op.create_index(name, "audit_events", columns, unique=False)
    for name in OLD:
        op.drop_index(name, table_name="audit_events")


def downgrade() -> None:
    op.drop_table("audit_verifications")
    for name, columns in OLD.items():
        op.create_index(name, "audit_events", columns, unique=False)
    for name in NEW:
        op.drop_index(name, table_name="audit_events")
