"""The organisation's working calendar: weekends and public holidays as data (the country's
holidays from the maintained ``holidays`` library — Serbia, Poland, Romania, Vietnam … — plus
extra days off and extra working days from the settings). Deadlines of access requests are
counted in working days; a deadline ends at the organisation's midnight after its last day."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import TYPE_CHECKING

import holidays

from iam.errors import ConfigError

if TYPE_CHECKING:
    from iam.config import Settings

UTC = dt.UTC


class WorkingCalendar:
    def __init__(
        self,
        *,
        timezone: str,
        country: str = "",
        subdivision: str = "",
        weekend: tuple[int, ...] = (5, 6),
        extra_holidays: tuple[dt.date, ...] = (),
        extra_working_days: tuple[dt.date, ...] = (),
    ) -> None:
        self.zone = zoneinfo.ZoneInfo(timezone)
        self.weekend = frozenset(weekend)
        self.extra_off = frozenset(extra_holidays)
        self.extra_on = frozenset(extra_working_days)
        self.public: holidays.HolidayBase | None = None
        if country:
            try:
                self.public = holidays.country_holidays(country.upper(), subdiv=subdivision or None)
            except NotImplementedError:
                raise ConfigError(
                    f"requests.country: the holidays library knows no country {country!r}."
                ) from None

    @classmethod
    def of(cls, settings: Settings) -> WorkingCalendar:
        s = settings.requests
        return cls(
            timezone=settings.timezone,
            country=s.country,
            subdivision=s.subdivision,
            weekend=tuple(s.weekend),
            extra_holidays=tuple(s.extra_holidays),
            extra_working_days=tuple(s.extra_working_days),
        )

    def holiday_name(self, day: dt.date) -> str | None:
        if day in self.extra_off:
            return "holiday (settings)"
        if self.public is not None and day in self.public:
            return str(self.public.get(day))
        return None

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.extra_on:
            return True
        if day.weekday() in self.weekend:
            return False
        return self.holiday_name(day) is None

    def local_date(self, at: dt.datetime) -> dt.date:
        return at.astimezone(self.zone).date()

    def _midnight(self, day: dt.date) -> dt.datetime:
        """The start of ``day`` in the organisation's zone, in UTC."""
        return dt.datetime.combine(day, dt.time(0), tzinfo=self.zone).astimezone(UTC)

    def deadline(self, start: dt.datetime, working_days: int) -> dt.datetime:
        """The end of the ``working_days``-th working day after the day of ``start`` (a request
        made on Friday with 3 working days is due at the end of Wednesday)."""
        day = self.local_date(start)
        counted = 0
        while counted < working_days:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return self._midnight(day + dt.timedelta(days=1))

    def remind_at(self, due: dt.datetime, working_days: int) -> dt.datetime:
        """The start of the last ``working_days`` working days before ``due`` (0: ``due``)."""
        if working_days <= 0:
            return due
        day = self.local_date(due - dt.timedelta(microseconds=1))
        counted = 0
        while True:
            if self.is_working_day(day):
                counted += 1
                if counted == working_days:
                    return self._midnight(day)
            day -= dt.timedelta(days=1)

    def working_days_left(self, now: dt.datetime, due: dt.datetime) -> int:
        """Working days from tomorrow up to the deadline's last day (0 on the last day or after)."""
        day, last = self.local_date(now), self.local_date(due - dt.timedelta(microseconds=1))
        left = 0
        while day < last:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                left += 1
        return left
