"""Time as the domain sees it: instants in UTC, calendar dates in the Netherlands."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

NL = ZoneInfo("Europe/Amsterdam")


def now() -> datetime:
    return datetime.now(UTC)


def today_nl() -> date:
    """Today's date in the Netherlands: an EHR recording at 00:30 local time is not 'in the future'."""
    return datetime.now(NL).date()
