"""HR: the built-in directory's accounts have an OU (a mover is moved); the register of
authorised persons keeps one row per authorisation, each with its own grant.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-04 15:00:00
"""

import datetime as dt
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import iam.db

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("local_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ou", sa.String(length=512), nullable=True))

    grants = op.create_table(
        "hr_authorisations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("employee_number", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("unit", sa.String(length=256), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("decision_number", sa.String(length=128), nullable=True),
        sa.Column("granted_on", sa.Date(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("remarks", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("hr_authorisations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_hr_authorisations_employee_number"), ["employee_number"], unique=False
        )

    # The register so far: one row per person, as the person's record shows it now.
    persons = sa.table(
        "hr_persons",
        sa.column("employee_number", sa.String),
        sa.column("department", sa.String),
        sa.column("title", sa.String),
        sa.column("personal_data", sa.String),
        sa.column("personal_data_scope", sa.Text),
        sa.column("decision_number", sa.String),
        sa.column("remarks", sa.Text),
        sa.column("start_date", sa.Date),
        sa.column("granted_at", iam.db.UTCDateTime()),
        sa.column("ended_at", iam.db.UTCDateTime()),
    )
    bind = op.get_bind()
    rows = []
    for p in bind.execute(sa.select(persons).where(persons.c.personal_data != "none")).mappings():
        granted: dt.datetime | None = p["granted_at"]
        ended: dt.datetime | None = p["ended_at"]
        scope = p["personal_data"] + (f": {p['personal_data_scope']}" if p["personal_data_scope"] else "")
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "employee_number": p["employee_number"],
                "event_id": None,
                "unit": p["department"],
                "title": p["title"],
                "scope": scope,
                "decision_number": p["decision_number"],
                "granted_on": granted.date() if granted else p["start_date"],
                "ended_on": ended.date() if ended else None,
                "remarks": p["remarks"],
            }
        )
    if rows:
        op.bulk_insert(grants, rows)


def downgrade() -> None:
    with op.batch_alter_table("hr_authorisations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hr_authorisations_employee_number"))
    op.drop_table("hr_authorisations")
    with op.batch_alter_table("local_users", schema=None) as batch_op:
        batch_op.drop_column("ou")
