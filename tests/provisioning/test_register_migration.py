"""Migration 0010 carries the register as it was (one row per person) into one row per
authorisation, so no grant is lost on upgrade (R-JML-6)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from iam.config import DatabaseSettings
from iam.db import make_engine
from iam.migrate import upgrade


def test_existing_register_rows_are_carried_over(tmp_path: Path) -> None:
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path}/iam.db"))
    try:
        upgrade(engine, "0008")
        columns = (
            "employee_number, given_name, family_name, department, title, engagement, start_date, "
            "personal_data, personal_data_scope, decision_number, status, granted_at, ended_at, "
            "linked_accounts, groups, created_at, updated_at"
        )
        with engine.begin() as conn:
            for emp, data, granted, ended in (
                ("1", "full", "2026-01-05 07:00:00.000000", "2026-06-30 22:00:00.000000"),
                ("2", "none", None, None),
                ("3", "limited", None, None),
            ):
                conn.execute(
                    sa.text(
                        f"INSERT INTO hr_persons ({columns}) VALUES (:emp, 'Zofia', 'Wójcik', 'Finance', "  # noqa: S608
                        "'Accountant', 'staff', '2026-01-05', :data, 'payroll', 'D-1', 'active', :granted, "
                        ":ended, '[]', '[]', '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')"
                    ),
                    {"emp": emp, "data": data, "granted": granted, "ended": ended},
                )
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT employee_number, unit, scope, decision_number, granted_on, ended_on "
                    "FROM hr_authorisations ORDER BY employee_number"
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("1", "Finance", "full: payroll", "D-1", "2026-01-05", "2026-06-30"),
            ("3", "Finance", "limited: payroll", "D-1", "2026-01-05", None),
        ]
        assert dt.date.fromisoformat(rows[0][4]) == dt.date(2026, 1, 5)
    finally:
        engine.dispose()
