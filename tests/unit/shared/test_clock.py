"""Dutch days of instants (shared/clock.py): the figures count meldingen per Dutch day, month and year."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.clock import NL, as_nl_date, as_utc_instant, start_of_nl_day


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2199, 12, 31), timezones=st.just(UTC)))
def test_the_dutch_day_of_an_instant_is_zoneinfos_across_every_clock_change(instant: datetime) -> None:
    expected = instant.astimezone(NL).date()
    assert as_nl_date(instant) == expected
    assert as_nl_date(instant.replace(tzinfo=None)) == expected  # SQLite's naive UTC


def test_the_dutch_day_turns_at_dutch_midnight() -> None:
    assert as_nl_date(datetime(2027, 1, 31, 22, 59, 59, tzinfo=UTC)) == date(2027, 1, 31)
    assert as_nl_date(datetime(2027, 1, 31, 23, 0, tzinfo=UTC)) == date(2027, 2, 1)  # CET: +1
    assert as_nl_date(datetime(2027, 7, 31, 22, 0, tzinfo=UTC)) == date(2027, 8, 1)  # CEST: +2
    assert start_of_nl_day(date(2027, 7, 1)) == datetime(2027, 6, 30, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(1899, 12, 31, 23, tzinfo=UTC),
        datetime(1900, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),  # 1899 in UTC
        datetime(2200, 1, 1, tzinfo=UTC),
    ],
)
def test_a_time_outside_the_supported_years_is_a_value_error_never_an_overflow(moment: datetime) -> None:
    with pytest.raises(ValueError, match="supported years"):
        as_utc_instant(moment)


def test_a_time_within_the_supported_years_is_moved_to_utc() -> None:
    assert as_utc_instant(datetime(2199, 12, 31, 23, tzinfo=UTC)).year == 2199
    assert as_utc_instant(datetime(1900, 1, 1, tzinfo=timezone(timedelta(hours=-1)))).hour == 1
