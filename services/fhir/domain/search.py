"""Task search (`GET /fhir/Task`): the parameters the facade understands, checked; the rest is a 400, since
a misspelt filter must not silently answer everything."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.fhir.domain.outcome import FhirError
from shared.clock import NL

TASK_STATUSES = frozenset({"requested", "received", "in-progress", "completed", "rejected", "cancelled"})
COMPARATORS = ("gt", "ge", "lt", "le")
MAX_COUNT = 100
CURSOR_LENGTH = 200


def _bad(diagnostics: str) -> FhirError:
    return FhirError(400, "invalid", diagnostics)


@dataclass(frozen=True)
class Bound:
    comparator: str
    moment: datetime

    def holds(self, value: datetime) -> bool:
        return {
            "gt": value > self.moment,
            "ge": value >= self.moment,
            "lt": value < self.moment,
            "le": value <= self.moment,
        }[self.comparator]

    def text(self) -> str:
        return f"{self.comparator}{self.moment.isoformat()}"


@dataclass(frozen=True)
class TaskSearch:
    statuses: frozenset[str] = frozenset()
    updated: tuple[Bound, ...] = ()
    count: int = 20
    cursor: str | None = None
    _given: list[tuple[str, str]] = field(default_factory=list, compare=False)

    @classmethod
    def of(cls, parameters: Iterable[tuple[str, str]]) -> TaskSearch:
        statuses: set[str] = set()
        bounds: list[Bound] = []
        count, cursor = 20, None
        given = list(parameters)
        for name, value in given:
            if name == "status":
                wanted = {s.strip() for s in value.split(",") if s.strip()}
                if not wanted or not wanted <= TASK_STATUSES:
                    raise _bad(f"status is one or more of {', '.join(sorted(TASK_STATUSES))}")
                statuses |= wanted
            elif name == "_lastUpdated":
                bounds.append(_bound(value))
            elif name == "_count":
                if not value.isdigit() or not 1 <= int(value) <= MAX_COUNT:
                    raise _bad(f"_count is a number from 1 to {MAX_COUNT}")
                count = int(value)
            elif name == "_cursor":
                if len(value) > CURSOR_LENGTH or not value.replace("-", "").replace("_", "").isalnum():
                    raise _bad("_cursor is the opaque value of a next link")
                cursor = value
            else:
                raise _bad("Task is searched by status, _lastUpdated, _count (and _cursor from a next link)")
        return cls(frozenset(statuses), tuple(bounds), count, cursor, given)

    def matches(self, task: dict[str, Any]) -> bool:
        if self.statuses and task["status"] not in self.statuses:
            return False
        updated = datetime.fromisoformat(task["meta"]["lastUpdated"].replace("Z", "+00:00"))
        return all(bound.holds(updated) for bound in self.updated)

    def query(self, *, cursor: str | None = None) -> list[tuple[str, str]]:
        """The parameters again, for the Bundle's links (the next page's cursor in place of this one's)."""
        kept = [(n, v) for n, v in self._given if n != "_cursor"]
        return kept + ([("_cursor", cursor)] if cursor else [])


def _bound(value: str) -> Bound:
    comparator, text = (value[:2], value[2:]) if value[:2] in COMPARATORS else ("eq", value)
    if comparator == "eq":
        raise _bad("_lastUpdated takes a comparator: gt, ge, lt or le (e.g. gt2026-12-01T00:00:00Z)")
    text = text.replace(" ", "+")  # an offset's `+` sent unencoded in the URL arrives as a space
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad("_lastUpdated is a comparator and a dateTime with its offset") from None
    if len(text) == len("2026-12-01"):  # a day: from its start in the Netherlands
        moment = moment.replace(tzinfo=NL)
    if moment.tzinfo is None:
        raise _bad("_lastUpdated needs a time zone offset (or Z)")
    try:
        moment.astimezone(UTC)  # at the calendar's edge (0001-01-01T00:00:00+14:00) this overflows
    except OverflowError:
        raise _bad("_lastUpdated lies outside the calendar when moved to UTC") from None
    return Bound(comparator, moment)
