"""Programme figures: what came of the meldingen of a gemeente (or the country) per month, quarter or year,
counted from their anonymous skeleton, with every small number suppressed. No I/O here.

Suppression (docs/security.md, "Programme figures"):
- every count below `SUPPRESSION_THRESHOLD` is `None`, and so is every figure derived from fewer meldingen;
- where parts add up to a published total (sender types, statuses, gemeenten), more parts are hidden until
  the hidden ones add up to 0 or at least the threshold, so the total minus the shown parts never gives a
  small number;
- a share is shown only when neither the part nor the rest is a small number (a share of 11/12 is a count
  of 1);
- periods are whole calendar months, quarters or years, so two questions never differ by a few days.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, get_args

from services.melding.domain.model import MeldingStatus
from shared.contracts.vocabulary import (
    MEDICAL_RISK_DOMAINS,
    NOT_REPORTED,
    RECIPIENT_TYPES,
    SENDER_TYPES,
    SOCIAL_RISK_DOMAINS,
    DeliveryStatus,
    Outcome,
)
from shared.errors import ValidationFailed

SUPPRESSION_THRESHOLD = 10
MAX_PERIODS = 120  # ten years of months: one answer stays small
FIRST_YEAR, LAST_YEAR = 2020, 2199  # the programme's years (and no calendar edge to overflow)
MELDING_STATUSES = tuple(status.value for status in MeldingStatus)
OUTCOMES = (*get_args(Outcome), NOT_REPORTED)
RISK_DOMAINS = (*MEDICAL_RISK_DOMAINS, *SOCIAL_RISK_DOMAINS)
# A delivery that ended without contact does not count towards contact in time (it went to someone else).
_ENDED_WITHOUT_CONTACT = frozenset({DeliveryStatus.returned, DeliveryStatus.retracted})


class Interval(StrEnum):
    month = "month"
    quarter = "quarter"
    year = "year"


class DeliveryFacts(NamedTuple):
    """What the figures need of one delivery: no organisation, no person. (Tuples: a year of the country's
    meldingen makes 100,000s of these, and a frozen dataclass takes several times as long to build.)"""

    status: DeliveryStatus
    contact_due_on: date | None  # the contact deadline's day (Dutch time)
    contact_at: date | None
    outcome: str | None


class MeldingFacts(NamedTuple):
    """What the figures need of one melding: its skeleton, which outlives its personal data."""

    created_on: date  # Dutch time
    gemeente_code: str | None
    sender_type: str
    status: str
    risk_domains: tuple[str, ...]
    recipient_types: tuple[str, ...]
    deliveries: tuple[DeliveryFacts, ...] = ()

    def contact_in_time(self, today: date) -> bool | None:
        """Whether a recipient made contact by its contact deadline; None while that is open (or there is no
        deadline). A delivery returned or retracted before contact does not count."""
        verdicts: list[bool | None] = []
        for d in self.deliveries:
            if d.contact_due_on is None or (d.contact_at is None and d.status in _ENDED_WITHOUT_CONTACT):
                continue
            if d.contact_at is not None:
                verdicts.append(d.contact_at <= d.contact_due_on)
            else:
                verdicts.append(False if d.contact_due_on < today else None)
        if True in verdicts:
            return True
        return False if verdicts and all(v is False for v in verdicts) else None

    def days_to_contact(self) -> int | None:
        """Days from the melding to the first contact any recipient made; None before contact."""
        contacts = [d.contact_at for d in self.deliveries if d.contact_at is not None]
        return (min(contacts) - self.created_on).days if contacts else None

    @property
    def returned(self) -> bool:
        return any(d.status is DeliveryStatus.returned for d in self.deliveries)

    @property
    def outcomes(self) -> set[str]:
        return {d.outcome for d in self.deliveries if d.outcome}


# --- periods ---------------------------------------------------------------------------------------------


def period_start(day: date, interval: Interval) -> date:
    if interval is Interval.year:
        return date(day.year, 1, 1)
    if interval is Interval.quarter:
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, day.month, 1)


_MONTHS = {Interval.month: 1, Interval.quarter: 3, Interval.year: 12}


def next_period(start: date, interval: Interval) -> date:
    index = start.year * 12 + start.month - 1 + _MONTHS[interval]
    return date(index // 12, index % 12 + 1, 1)


def period_label(start: date, interval: Interval) -> str:
    """`2027-01`, `2027-Q1` or `2027`."""
    if interval is Interval.year:
        return f"{start.year}"
    if interval is Interval.quarter:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year}-{start.month:02d}"


def aligned(first: date, last: date, interval: Interval) -> tuple[date, date]:
    """The whole periods that hold `first`..`last`: from the first day of the first to the last of the last."""
    return period_start(first, interval), next_period(period_start(last, interval), interval) - timedelta(days=1)


def checked_range(first: date, last: date, interval: Interval) -> tuple[date, date]:
    """The whole periods asked for (`aligned`); ValidationFailed when `last` lies before `first` or the range
    holds more than `MAX_PERIODS` periods."""
    for field, day in (("from", first), ("to", last)):
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            raise ValidationFailed(field, f"`{field}` must lie in the years {FIRST_YEAR}-{LAST_YEAR}")
    if last < first:
        raise ValidationFailed("to", "`to` must not lie before `from`")
    start, end = aligned(first, last, interval)
    months = (end.year - start.year) * 12 + end.month - start.month + 1
    periods = months // _MONTHS[interval]
    if periods > MAX_PERIODS:
        raise ValidationFailed(
            "to", f"the range holds {periods} {interval.value}s, more than {MAX_PERIODS}: ask for a longer interval"
        )
    return start, end


def period_starts(first: date, last: date, interval: Interval) -> list[date]:
    """The first day of every period in `first`..`last` (aligned)."""
    starts, at = [], period_start(first, interval)
    while at <= last:
        starts.append(at)
        at = next_period(at, interval)
    return starts


# --- suppression -----------------------------------------------------------------------------------------


def shown(count: int, threshold: int = SUPPRESSION_THRESHOLD) -> int | None:
    """A count as published: None below the threshold."""
    return count if count >= threshold else None


def shown_parts(counts: Mapping[str, int], threshold: int = SUPPRESSION_THRESHOLD) -> dict[str, int | None]:
    """The parts of a published total (each melding in exactly one part), as published.

    Parts below the threshold are hidden; then, while the hidden parts add up to a small number (1 to
    threshold - 1), which the total minus the shown parts would give away, the smallest shown part is hidden
    too (ties: the first in order). Parts keep their order; an all-zero group is all None.
    """
    out: dict[str, int | None] = {key: shown(count, threshold) for key, count in counts.items()}
    hidden = sum(count for key, count in counts.items() if out[key] is None)
    visible = sorted((key for key in counts if out[key] is not None), key=lambda key: counts[key])  # stable
    for smallest in visible:
        if not 0 < hidden < threshold:
            break
        out[smallest] = None
        hidden += counts[smallest]
    return out


def shown_share(part: int, whole: int, threshold: int = SUPPRESSION_THRESHOLD) -> float | None:
    """`part / whole`, rounded to 2 decimals, unless either the part or the rest is a small number."""
    rest = whole - part
    if whole < threshold or 0 < part < threshold or 0 < rest < threshold:
        return None
    return round(part / whole, 2)


def shown_percentiles(values: Sequence[int], threshold: int = SUPPRESSION_THRESHOLD) -> dict[str, float | None]:
    """p50 and p90 (inclusive method), or None for both when fewer than `threshold` values."""
    if len(values) < threshold:
        return {"p50": None, "p90": None}
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return {"p50": round(deciles[4], 1), "p90": round(deciles[8], 1)}


# --- the figures -----------------------------------------------------------------------------------------


def _counted(keys: Iterable[str], values: Iterable[str]) -> dict[str, int]:
    counter = Counter(values)
    return {key: counter.get(key, 0) for key in keys}


def period_figures(
    label: str, facts: Sequence[MeldingFacts], today: date, *, gemeenten: Sequence[str] | None = None
) -> dict[str, Any]:
    """One period's figures, suppressed. With `gemeenten` (the country's figures), also `by_gemeente` over
    those codes and `without_gemeente` (no address routing could place), parts of one total."""
    verdicts = [v for v in (m.contact_in_time(today) for m in facts) if v is not None]
    days = [d for d in (m.days_to_contact() for m in facts) if d is not None]
    figures: dict[str, Any] = {
        "period": label,
        "meldingen": shown(len(facts)),
        "by_sender_type": shown_parts(_counted(SENDER_TYPES, (m.sender_type for m in facts))),
        "by_risk_domain": {
            k: shown(n) for k, n in _counted(RISK_DOMAINS, (d for m in facts for d in m.risk_domains)).items()
        },
        "by_recipient_type": {
            k: shown(n) for k, n in _counted(RECIPIENT_TYPES, (t for m in facts for t in m.recipient_types)).items()
        },
        "by_status": shown_parts(_counted(MELDING_STATUSES, (m.status for m in facts))),
        "returned": shown(sum(m.returned for m in facts)),
        "contact_within_deadline": shown_share(sum(verdicts), len(verdicts)),
        "days_to_contact": shown_percentiles(days),
        "outcomes": {k: shown(n) for k, n in _counted(OUTCOMES, (o for m in facts for o in m.outcomes)).items()},
    }
    if gemeenten is not None:
        placed = _counted([*gemeenten, ""], (m.gemeente_code or "" for m in facts))
        parts = shown_parts(placed)
        figures["without_gemeente"] = parts.pop("")
        figures["by_gemeente"] = parts
    return figures


def figures(
    facts: Iterable[MeldingFacts],
    first: date,
    last: date,
    interval: Interval,
    today: date,
    *,
    national: bool,
) -> list[dict[str, Any]]:
    """The figures of every period in `first`..`last` (aligned), oldest first. The country's list every
    gemeente that has a melding in the range, in every period."""
    starts = period_starts(first, last, interval)
    by_period: dict[date, list[MeldingFacts]] = {start: [] for start in starts}
    for melding in facts:
        start = period_start(melding.created_on, interval)
        if start in by_period:
            by_period[start].append(melding)
    gemeenten = sorted({m.gemeente_code for ms in by_period.values() for m in ms if m.gemeente_code})
    return [
        period_figures(
            period_label(start, interval), by_period[start], today, gemeenten=gemeenten if national else None
        )
        for start in starts
    ]


def shows_nothing(periods: Sequence[Mapping[str, Any]]) -> bool:
    """True when a figures document shows no number at all: no period's total is shown (no meldingen, or
    too few), and every part of a hidden total is smaller still, so hidden too."""
    return not any(period["meldingen"] for period in periods)
