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
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int((fraction[1:] + "000000")[:6]) if fraction else 0
    try:
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros)
    except ValueError as exc:
        raise TimestampError(f"ts is not a valid date/time: {exc}") from None
    if offset in ("Z", "z"):
        offset_minutes = 0
    else:
        sign = 1 if offset[0] == "+" else -1
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            raise TimestampError("ts has an invalid UTC offset")
        offset_minutes = sign * (oh * 60 + om)
    naive_utc_micros = (local.toordinal() - _EPOCH.toordinal()) * MICROS_PER_DAY + (
        (local.hour * 3600 + local.minute * 60 + local.second) * 1_000_000 + local.microsecond
    )
    micros = naive_utc_micros - offset_minutes * 60_000_000
    if not _MIN_MICROS <= micros < _MAX_MICROS:
        raise TimestampError("ts in UTC must fall in the years 0001..9999")
    return micros


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
