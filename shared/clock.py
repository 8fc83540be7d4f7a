"""Time as the domain sees it: instants in UTC, calendar dates in the Netherlands."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

NL = ZoneInfo("Europe/Amsterdam")


def now() -> datetime:
    return datetime.now(UTC)


def today_nl() -> date:
    """Today's date in the Netherlands: an EHR recording at 00:30 local time is not 'in the future'."""
    return datetime.now(NL).date()


def as_nl_date(instant: datetime) -> date:
    """The day an instant falls on in the Netherlands (a naive instant is taken as UTC, as stored).

    In whole seconds and a cached offset per hour (it changes only on the hour): the programme figures
    convert 100,000s of instants, and ZoneInfo's own conversion would cost more than all their counting.
    """
    seconds = int((instant if instant.tzinfo else instant.replace(tzinfo=UTC)).timestamp())
    return date.fromordinal(_EPOCH_DAY + (seconds + _nl_offset_seconds(seconds // 3600)) // 86400)


_EPOCH_DAY = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=65536)
def _nl_offset_seconds(utc_hour: int) -> int:
    offset = datetime.fromtimestamp(utc_hour * 3600, NL).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def start_of_nl_day(day: date) -> datetime:
    """The instant (UTC) a Dutch calendar day begins."""
    return datetime(day.year, day.month, day.day, tzinfo=NL).astimezone(UTC)


# The years a time or a day a client sends may fall in: wide enough for any birth date, consent or due date
# the platform meets, and far from the calendar's edges (years 1 and 9999), where moving a time to UTC or
# adding a period to a day overflows into a 500.
FIRST_YEAR, LAST_YEAR = 1900, 2199


def _year_in_range(year: int) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"lies outside the supported years {FIRST_YEAR}-{LAST_YEAR}")


def as_utc_instant(value: datetime) -> datetime:
    """An instant in UTC, for a time a client sent; ValueError for a naive one or one no database stores.

    A time without an offset is ambiguous (whose wall clock?) and a time at the edge of the calendar
    (`0001-01-01T00:00:00+05:00`) overflows when moved to UTC: both are the client's error, not ours.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset, e.g. 2026-01-01T00:00:00Z")
    _year_in_range(value.year)  # before the conversion: at the calendar's edge it overflows
    instant = value.astimezone(UTC)
    _year_in_range(instant.year)
    return instant


def _iso_text(value: object) -> object:
    """Only ISO 8601 text is a time here: a bare number (`0`, pydantic's Unix time) is not what it seems."""
    if isinstance(value, str) and _ISO_START.match(value):
        return value
    if isinstance(value, datetime):
        return value
    raise ValueError("must be an ISO 8601 date-time with a UTC offset, e.g. 2026-01-01T00:00:00Z")


_ISO_START = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]")

# A moment a client sends (a query filter, a body field): ISO 8601 with an offset, within the years
# databases store.
Instant = Annotated[
    datetime,
    BeforeValidator(_iso_text),
    AfterValidator(as_utc_instant),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _iso_date_text(value: object) -> object:
    """Only `YYYY-MM-DD` is a day here: a bare number (`0`, pydantic's Unix time) is not what it seems."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    raise ValueError("must be a date as YYYY-MM-DD")


def _day_in_range(day: date) -> date:
    _year_in_range(day.year)
    return day


# A day a client sends (a body field): ISO 8601 `YYYY-MM-DD` and nothing else, within the supported years.
IsoDate = Annotated[
    date,
    BeforeValidator(_iso_date_text),
    AfterValidator(_day_in_range),
    WithJsonSchema({"type": "string", "format": "date"}),
]
