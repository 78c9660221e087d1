"""The working calendar: weekends and the public holidays of Serbia, Poland, Romania and Vietnam
(the ``holidays`` library), extra days off and extra working days from the settings, deadlines
ending at the organisation's midnight, and reminders at the start of the last working days."""

from __future__ import annotations

import datetime as dt

import pytest

from iam.errors import ConfigError
from provisioning.requests.calendar import WorkingCalendar

UTC = dt.UTC


@pytest.mark.parametrize(
    ("country", "zone", "holiday"),
    [
        ("RS", "Europe/Belgrade", dt.date(2026, 11, 11)),  # Armistice Day, a Wednesday
        ("PL", "Europe/Warsaw", dt.date(2026, 11, 11)),  # Independence Day, a Wednesday
        ("RO", "Europe/Bucharest", dt.date(2026, 12, 1)),  # National Day, a Tuesday
        ("VN", "Asia/Ho_Chi_Minh", dt.date(2026, 9, 2)),  # National Day, a Wednesday
    ],
)
def test_a_public_holiday_is_not_a_working_day(country: str, zone: str, holiday: dt.date) -> None:
    cal = WorkingCalendar(timezone=zone, country=country)
    assert not cal.is_working_day(holiday) and cal.holiday_name(holiday)
    plain = WorkingCalendar(timezone=zone)
    assert plain.is_working_day(holiday)
    # asked the day before at noon, 1 working day: the holiday is skipped
    start = dt.datetime.combine(holiday - dt.timedelta(days=1), dt.time(12), tzinfo=cal.zone)
    due = cal.deadline(start, 1).astimezone(cal.zone)
    assert due.date() == holiday + dt.timedelta(days=2) and due.time() == dt.time(0)
    assert plain.deadline(start, 1).astimezone(cal.zone).date() == holiday + dt.timedelta(days=1)


def test_weekend_extra_days_off_and_extra_working_days() -> None:
    friday = dt.datetime(2026, 12, 4, 15, tzinfo=UTC)
    cal = WorkingCalendar(timezone="UTC")
    assert cal.deadline(friday, 3) == dt.datetime(2026, 12, 10, tzinfo=UTC)  # Mon, Tue, Wed
    off = WorkingCalendar(timezone="UTC", extra_holidays=(dt.date(2026, 12, 8),))
    assert off.deadline(friday, 3) == dt.datetime(2026, 12, 11, tzinfo=UTC)
    worked = WorkingCalendar(timezone="UTC", extra_working_days=(dt.date(2026, 12, 5),))  # a Saturday
    assert worked.deadline(friday, 3) == dt.datetime(2026, 12, 9, tzinfo=UTC)
    friday_weekend = WorkingCalendar(timezone="UTC", weekend=(4, 5))  # Friday and Saturday off
    assert friday_weekend.deadline(friday, 1) == dt.datetime(2026, 12, 7, tzinfo=UTC)  # Sunday works


def test_reminder_and_days_left() -> None:
    cal = WorkingCalendar(timezone="Europe/Belgrade", country="RS")
    start = dt.datetime(2027, 1, 5, 10, tzinfo=UTC)
    due = cal.deadline(start, 3)
    assert due == dt.datetime(2027, 1, 11, 23, tzinfo=UTC)  # 6, 8, 11 January (7th: Christmas)
    assert cal.remind_at(due, 1) == dt.datetime(2027, 1, 10, 23, tzinfo=UTC)  # Monday 00:00
    assert cal.remind_at(due, 2) == dt.datetime(2027, 1, 7, 23, tzinfo=UTC)  # Friday 00:00
    assert cal.remind_at(due, 0) == due
    assert cal.working_days_left(start, due) == 3
    assert cal.working_days_left(dt.datetime(2027, 1, 11, 12, tzinfo=UTC), due) == 0


def test_unknown_country_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no country 'XX'"):
        WorkingCalendar(timezone="UTC", country="XX")
