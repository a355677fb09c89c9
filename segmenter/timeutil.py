"""Event-time parsing and day arithmetic (SPEC section 3): RFC 3339 in, epoch micros and UTC days out."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
    re.ASCII,
)
MICROS_PER_DAY = 86_400_000_000
_EPOCH = date(1970, 1, 1)
# Days must stay renderable as dates: an offset can push 9999-12-31 or 0001-01-01 out of range in UTC.
_MIN_MICROS = (date(1, 1, 1).toordinal() - _EPOCH.toordinal()) * MICROS_PER_DAY
_MAX_MICROS = (date(9999, 12, 31).toordinal() + 1 - _EPOCH.toordinal()) * MICROS_PER_DAY


class TimestampError(ValueError):
    """The text is not an RFC 3339 timestamp with an offset."""


def parse_rfc3339_micros(text: str) -> int:
    """Return epoch microseconds of an RFC 3339 timestamp; the offset is mandatory (SPEC section 2)."""
    match = _RFC3339.match(text)
    if match is None:
        raise TimestampError("ts must be RFC 3339 with an offset, e.g. 2026-11-24T10:15:00Z")
    year_s, month_s, day_s, hour_s, minute_s, second_s, fraction, offset = match.groups()
    year, month, day = int(year_s), int(month_s), int(day_s)
    hour, minute, second = int(hour_s), int(minute_s), int(second_s)
    micros = int((fraction[1:] + "000000")[:6]) if fraction else 0
    # Integer calendar arithmetic (no datetime object per event); the same checks as datetime's.
    if year < 1 or not 1 <= month <= 12:
        raise TimestampError(
            f"ts is not a valid date/time: {'year' if year < 1 else 'month'} is out of range"
        )
    if not 1 <= day <= _days_in_month(year, month):
        raise TimestampError("ts is not a valid date/time: day is out of range for month")
    if hour > 23 or minute > 59 or second > 59:
        raise TimestampError("ts is not a valid date/time: hour, minute or second is out of range")
    if offset in ("Z", "z"):
        offset_minutes = 0
    else:
        sign = 1 if offset[0] == "+" else -1
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            raise TimestampError("ts has an invalid UTC offset")
        offset_minutes = sign * (oh * 60 + om)
    naive_utc_micros = _days_from_civil(year, month, day) * MICROS_PER_DAY + (
        (hour * 3600 + minute * 60 + second) * 1_000_000 + micros
    )
    result = naive_utc_micros - offset_minutes * 60_000_000
    if not _MIN_MICROS <= result < _MAX_MICROS:
        raise TimestampError("ts in UTC must fall in the years 0001..9999")
    return result


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def day_of_micros(micros: int) -> int:
    """UTC day number (days since 1970-01-01, may be negative) of an epoch-microseconds instant."""
    return micros // MICROS_PER_DAY


def day_to_date(day: int) -> date:
    return _EPOCH + timedelta(days=day)


def day_iso(day: int) -> str:
    """`YYYY-MM-DD` of a day number."""
    return day_to_date(day).isoformat()


def day_midnight_rfc3339(day: int) -> str:
    """`YYYY-MM-DDT00:00:00Z` of a day number: the `at` of time-driven transitions (SPEC section 6)."""
    return f"{day_iso(day)}T00:00:00Z"


def micros_to_rfc3339(micros: int) -> str:
    """Canonical UTC rendering of an instant, used where no original text exists (e.g. `clock advance`)."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    return moment.isoformat().replace("+00:00", "Z")


def date_to_day(value: date) -> int:
    return value.toordinal() - _EPOCH.toordinal()
