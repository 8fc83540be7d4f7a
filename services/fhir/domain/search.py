"""Task search (`GET /fhir/Task`): the parameters the facade understands, checked. Any other parameter is a
400, since a misspelt filter must not silently answer everything — unless the client asked for
`Prefer: handling=lenient`, which ignores it (and the Bundle's `self` link, naming what was used, omits it).

`_lastUpdated` follows FHIR's date search: a value stands for the range of its precision (a year, a month, a
day in the Netherlands; a dateTime for itself), without a prefix it means `eq` (within that range)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.fhir.domain.outcome import FhirError
from shared.clock import NL

TASK_STATUSES = frozenset({"requested", "received", "in-progress", "completed", "rejected", "cancelled"})
# The v1 melding statuses each Task status comes from (services.fhir.domain.melding.task_status): the
# database narrows a search to these, the facade then tells received, in-progress, completed and a melding
# every recipient returned apart by its deliveries.
MELDING_STATUSES = {
    "requested": ("accepted",),
    "received": ("delivered",),
    "in-progress": ("delivered",),
    "completed": ("delivered",),
    "rejected": ("unroutable", "not_delivered", "delivered"),
    "cancelled": ("cancelled", "withdrawn"),
}
PREFIXES = ("eq", "gt", "ge", "lt", "le")
MAX_COUNT = 100
DEFAULT_COUNT = 20
CURSOR_LENGTH = 200
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_DAY = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
KNOWN = (
    "status",
    "_lastUpdated",
    "_id",
    "_count",
    "_summary",
    "_total",
    "_format",
    "_cursor",
    "requester",
    "requester:identifier",
)


def _bad(diagnostics: str, code: str = "invalid") -> FhirError:
    return FhirError(400, code, diagnostics)


@dataclass(frozen=True)
class Range:
    """One `_lastUpdated` parameter as the range of moments it lets through: from `since` (inclusive) to
    `until` (exclusive, or inclusive when `until_included`); None is open."""

    since: datetime | None = None
    until: datetime | None = None
    until_included: bool = False

    def holds(self, value: datetime) -> bool:
        if self.since is not None and value < self.since:
            return False
        if self.until is None:
            return True
        return value <= self.until if self.until_included else value < self.until


@dataclass(frozen=True)
class TaskSearch:
    statuses: frozenset[str] = frozenset()
    updated: tuple[Range, ...] = ()
    ids: tuple[str, ...] = ()
    count: int = DEFAULT_COUNT
    cursor: str | None = None
    summary_count: bool = False
    total: bool = False
    ignored: int = 0
    requesters: tuple[tuple[str, str], ...] = ()  # (system, value): a Subscription's criteria, run as a search
    _used: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, parameters: Iterable[tuple[str, str]], *, lenient: bool = False) -> TaskSearch:
        """The search a query string asks for; a 400 for what the facade cannot do (or, strict, does not know)."""
        statuses: set[str] = set()
        ranges: list[Range] = []
        ids: list[str] = []
        count, cursor, summary_count, total = DEFAULT_COUNT, None, False, False
        used: list[tuple[str, str]] = []
        ignored = 0
        requesters: list[tuple[str, str]] = []
        for name, value in parameters:
            if name not in KNOWN:
                if not lenient:
                    raise _bad(
                        "Task is searched by status, _lastUpdated, _id, _count, _summary=count, _total and "
                        "requester:identifier "
                        "(and _cursor from a next link); send Prefer: handling=lenient to have other "
                        "parameters ignored",
                        "not-supported",
                    )
                ignored += 1  # counted, never repeated: a client's key may hold anything, a BSN too
                continue
            used.append((name, value))
            if name == "status":
                wanted = {s.strip() for s in value.split(",") if s.strip()}
                if not wanted or not wanted <= TASK_STATUSES:
                    raise _bad(f"status is one or more of {', '.join(sorted(TASK_STATUSES))}")
                statuses |= wanted
            elif name == "_lastUpdated":
                ranges.append(last_updated(value))
            elif name == "_id":
                wanted_ids = [i.strip() for i in value.split(",") if i.strip()]
                if not wanted_ids or not all(_ID.match(i) for i in wanted_ids):
                    raise _bad("_id is one or more Task ids, separated by commas")
                ids += [i for i in wanted_ids if i not in ids]
            elif name == "_count":
                if not value.isdigit() or not 0 <= int(value) <= MAX_COUNT:
                    raise _bad(f"_count is a number from 0 to {MAX_COUNT}")
                count = int(value)
            elif name in ("requester:identifier", "requester"):
                system, bar, identifier = value.rpartition("|")
                if not bar or not system or not identifier:
                    raise _bad(f"{name} is <system>|<value>, e.g. http://fhir.nl/fhir/NamingSystem/ura|<URA>")
                requesters.append((system, identifier))
            elif name == "_summary":
                if value not in ("count", "false"):
                    raise _bad("_summary is count (only the total) or false", "not-supported")
                summary_count = value == "count"
            elif name == "_total":
                if value not in ("none", "estimate", "accurate"):
                    raise _bad("_total is none, estimate or accurate")
                total = value != "none"
            elif name == "_format":
                pass  # checked for every interaction, before the route (services.fhir.domain.formats)
            elif name == "_cursor":
                if len(value) > CURSOR_LENGTH or not value.replace("-", "").replace("_", "").isalnum():
                    raise _bad("_cursor is the opaque value of a next link")
                cursor = value
        if count == 0:
            summary_count = True  # _count=0: how many, no entries (as _summary=count)
        if len(ids) > (count or MAX_COUNT):
            raise _bad("_id names more Tasks than a page holds (_count, at most 100)")
        return cls(
            frozenset(statuses),
            tuple(ranges),
            tuple(ids),
            count or DEFAULT_COUNT,
            cursor,
            summary_count,
            total or summary_count,
            ignored,
            tuple(requesters),
            tuple(used),
        )

    @property
    def melding_statuses(self) -> tuple[str, ...]:
        """The v1 statuses the database narrows to (empty: any)."""
        return tuple(sorted({m for status in self.statuses for m in MELDING_STATUSES[status]}))

    @property
    def updated_since(self) -> datetime | None:
        """The latest lower bound of `_lastUpdated`: what the database filters on (the rest is checked here)."""
        bounds = [r.since for r in self.updated if r.since is not None]
        return max(bounds) if bounds else None

    def matches(self, task: Mapping[str, Any]) -> bool:
        if self.statuses and task["status"] not in self.statuses:
            return False
        if self.ids and task["id"] not in self.ids:
            return False
        identifier = task.get("requester", {}).get("identifier", {})
        if any((identifier.get("system"), identifier.get("value")) != wanted for wanted in self.requesters):
            return False
        updated = datetime.fromisoformat(str(task["meta"]["lastUpdated"]).replace("Z", "+00:00"))
        return all(r.holds(updated) for r in self.updated)

    def query(self, *, cursor: str | None = None) -> list[tuple[str, str]]:
        """The parameters used, for the Bundle's links (the next page's cursor in place of this one's); an
        ignored parameter is left out, so the `self` link says what the answer is an answer to."""
        kept = [(n, v) for n, v in self._used if n != "_cursor"]
        return kept + ([("_cursor", cursor)] if cursor else [])


def last_updated(value: str) -> Range:
    """One `_lastUpdated` value (an optional prefix, then a date or dateTime) as the range it lets through."""
    prefix, text = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
    if prefix not in PREFIXES:
        raise _bad("_lastUpdated takes the prefix eq, gt, ge, lt or le (or none: eq)", "not-supported")
    text = text.replace(" ", "+")  # an offset's `+` sent unencoded in the URL arrives as a space
    start, end = _moments(text)
    if prefix == "eq":
        return Range(start, end, until_included=start == end)
    if prefix == "ge":
        return Range(since=start)
    if prefix == "lt":
        return Range(until=start)
    if prefix == "le":
        return Range(until=end, until_included=start == end)
    # gt: after the whole range (a dateTime: strictly after it, to the microsecond)
    return Range(since=end + timedelta(microseconds=1) if start == end else end)


def _moments(text: str) -> tuple[datetime, datetime]:
    """The first moment of the range `text` names and the first one after it (a dateTime: itself, twice)."""
    try:
        start, end = _range_of(text)
        # at the calendar's edge (0001-01-01T00:00:00+14:00, or a day after 9999-12-31) this overflows
        start.astimezone(UTC), (end + timedelta(days=1)).astimezone(UTC)
    except (OverflowError, ValueError):
        raise _bad("_lastUpdated lies outside the calendar") from None
    return start, end


def _range_of(text: str) -> tuple[datetime, datetime]:
    if _DAY.match(text):
        parts = [int(p) for p in text.split("-")]
        year, month, day = parts[0], (parts[1:2] or [1])[0], (parts[2:3] or [1])[0]
        try:
            start = datetime(year, month, day, tzinfo=NL)
        except ValueError:
            raise _bad("_lastUpdated: not a date") from None
        if len(parts) == 3:
            end = start + timedelta(days=1)
        elif len(parts) == 2:
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=NL)
        else:
            end = datetime(year + 1, 1, 1, tzinfo=NL)
        return start, end
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(
            "_lastUpdated is a date (2026-12-07) or a dateTime with its offset, after an optional prefix"
        ) from None
    if "T" not in text or moment.tzinfo is None:
        raise _bad("_lastUpdated: a dateTime needs a time zone offset (or Z)")
    return moment, moment
