"""Programme figures: what came of the meldingen of a gemeente, a GGD region or the country per month, quarter or year,
counted from their anonymous skeleton, with every small number suppressed. No I/O here.

Suppression (docs/security.md, "Programme figures"):
- each year is one protected table (`YearTable`): every gemeente, the meldingen without one, every GGD region
  and the country, per month, quarter and year, for every breakdown, protected once with secondary
  suppression across those margins (`protection.protect`), and each table of an area's parts (a region's
  gemeenten, the country's gemeenten, the country's regions) × a partition (statuses, sender types,
  recipient sets) also as a whole (`protection.Grid`); every answer about the year is a slice of it, so no
  set of answers holds numbers the protection did not weigh together;
- every count below `SUPPRESSION_THRESHOLD` is `None`; a true 0 is 0 unless it would give a hidden count away;
- a share or the days to contact are shown only where the protected table shows the counts they come from;
- periods are whole calendar months, quarters or years, so two questions never differ by a few days.
"""

from __future__ import annotations

import statistics
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from enum import StrEnum
from itertools import combinations
from typing import Any, NamedTuple, get_args

from services.melding.domain.model import MeldingStatus
from services.melding.domain.protection import (
    Grid,
    Relation,
    follows_from_shown,
    protect_numbered,
    without_cycle_collection,
)
from services.melding.domain.regions import NO_REGIONS, Regions
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


# --- the protected table of a year ------------------------------------------------------------------------

NATION = "NL"  # the country's row (no CBS gemeente code looks like it)
WITHOUT = ""  # the row of meldingen no address could place in a gemeente
YEAR = "Y"
QUARTERS = {f"Q{q}": tuple(f"{month:02d}" for month in range(3 * q - 2, 3 * q + 1)) for q in range(1, 5)}
MONTH_KEYS = tuple(month for months in QUARTERS.values() for month in months)
# Counted but never published as counts: the share with contact in time and the days to contact are shown
# only where the protected table shows these.
IN_TIME, LATE, CONTACT = ("contact", "in_time"), ("contact", "late"), ("contact", "made")
# Which recipient types a melding asks for, as one part each: `jgz`, `wijkteam`, `jgz+wijkteam`. Every
# melding names one or more, so `by_recipient_type` is not a table of its own (`jgz + wijkteam >= meldingen`
# would bound a hidden type by the other): the table protects this partition, never published, and shows a
# recipient type only where its count follows from the partition's shown cells.
RECIPIENT_SETS = tuple(
    "+".join(types) for size in range(1, len(RECIPIENT_TYPES) + 1) for types in combinations(RECIPIENT_TYPES, size)
)
# The breakdowns whose parts add up to `meldingen` (each melding in exactly one part).
PARTITIONS = {"by_sender_type": SENDER_TYPES, "by_status": MELDING_STATUSES, "recipient_sets": RECIPIENT_SETS}
# The breakdowns where a melding can count in several parts, or in none: tables of their own.
SEVERAL = {"by_risk_domain": RISK_DOMAINS, "outcomes": OUTCOMES}
MEASURES: tuple[tuple[str, str], ...] = (
    ("meldingen", ""),
    *((field, key) for field, keys in (*PARTITIONS.items(), *SEVERAL.items()) for key in keys),
    ("returned", ""),
    IN_TIME,
    LATE,
    CONTACT,
)

# What a melding counts towards in its row and month: (field, key), a measure or not one (an unknown status).
Counted = dict[tuple[str, int], list[tuple[str, str]]]  # (gemeente code or WITHOUT, month 0..11)
# A row's times, in the order of its cells in the year table: the months, the quarters, the year.
TIMES = (*MONTH_KEYS, *QUARTERS, YEAR)
_TIME_AT = {time: at for at, time in enumerate(TIMES)}
_MEASURE_AT = {measure: at for at, measure in enumerate(MEASURES)}


def _time_node(start: date, interval: Interval) -> str:
    if interval is Interval.year:
        return YEAR
    if interval is Interval.quarter:
        return f"Q{(start.month - 1) // 3 + 1}"
    return f"{start.month:02d}"


class YearTable:
    """One year's counts of every gemeente, every GGD region and the country per month, quarter and the year,
    for every breakdown, protected once: every answer about that year is a slice of it, so no two answers hold
    numbers that the protection did not consider together (docs/security.md, "Programme figures").

    The areas are a hierarchy: a region is the sum of its gemeenten, the country the sum of its gemeenten and
    also of its regions (with the meldingen no gemeente was found for, and those of a gemeente `region_of`
    does not know). Each level is tied to the one below by relations, and each table of an area's parts × a
    partition is protected as a whole (`protection.Grid`) — the gemeenten of a region, the gemeenten of the
    country and the regions of the country — so that a region's answer cannot be differenced against its
    gemeenten's or the country's. Where a region's relation needs one more cell hidden, the region's total
    yields rather than another gemeente (`Relation.total_first`, docs/security.md says why)."""

    def __init__(
        self,
        facts: Iterable[MeldingFacts],
        today: date,
        threshold: int = SUPPRESSION_THRESHOLD,
        *,
        region_of: Mapping[str, str] | None = None,
    ) -> None:
        self.threshold = threshold
        with without_cycle_collection():  # 100,000s of relations and lists, none in a cycle
            self._protect(self._count(facts, today), region_of or {})

    def _count(self, facts: Iterable[MeldingFacts], today: date) -> Counted:
        """What each melding of a gemeente (or without one) and month counts towards, to be counted at once."""
        counted: Counted = {}
        self._days: dict[tuple[str, str], list[int]] = {}
        for m in facts:
            row, month = m.gemeente_code or WITHOUT, m.created_on.month - 1
            measures = [("meldingen", ""), ("by_sender_type", m.sender_type), ("by_status", m.status)]
            measures += [("by_risk_domain", d) for d in set(m.risk_domains)]
            asked = [t for t in RECIPIENT_TYPES if t in m.recipient_types]
            if asked:  # the consent names one or more
                measures.append(("recipient_sets", "+".join(asked)))
            measures += [("outcomes", o) for o in m.outcomes]
            if m.returned:
                measures.append(("returned", ""))
            verdict = m.contact_in_time(today)
            if verdict is not None:
                measures.append(IN_TIME if verdict else LATE)
            days = m.days_to_contact()
            if days is not None:
                measures.append(CONTACT)
                self._days.setdefault((row, MONTH_KEYS[month]), []).append(days)
            bucket = counted.get((row, month))
            if bucket is None:
                counted[row, month] = measures
            else:
                bucket += measures
        return counted

    def _protect(self, counted: Counted, region_of: Mapping[str, str]) -> None:
        self.rows = sorted({row for row, _ in counted})
        # The regions with a melding this year, by their gemeenten with one; the country's upper level: those
        # regions and every row in none.
        self.regions: dict[str, list[str]] = {}
        for row in self.rows:
            if row in region_of:
                self.regions.setdefault(region_of[row], []).append(row)
        upper = [*self.regions, *(row for row in self.rows if row not in region_of)]
        # Each area above the gemeenten, with the rows it is the sum of.
        areas: dict[str, list[str]] = {**self.regions, NATION: self.rows}
        # Every cell by number (`protect_numbered`: a cell is named a million times in the relations, and a
        # tuple of strings built and looked up for each took seconds): measure by measure, each measure's
        # rows — the gemeenten, then the areas — and each row's `TIMES`. A row's cell at a time is its first
        # cell + the time's place, and a measure's cell of a row is the measure's first cell + the row's.
        lines = (*self.rows, *areas)
        self._line_at = line_at = {row: at for at, row in enumerate(lines)}
        width = len(TIMES)
        self._span = span = len(lines) * width  # cells per measure
        counts = [0] * (len(MEASURES) * span)
        for (row, month), measures in counted.items():
            first = line_at[row] * width + month
            for measure, count in Counter(measures).items():
                at = _MEASURE_AT.get(measure)
                if at is not None:
                    counts[at * span + first] = count
        members = {area: [line_at[row] * width for row in rows] for area, rows in areas.items()}
        up = [line_at[row] * width for row in upper]
        quarters = [(_TIME_AT[quarter], [_TIME_AT[month] for month in months]) for quarter, months in QUARTERS.items()]
        year = _TIME_AT[YEAR]
        higher = [*(at for at, _ in quarters), year]  # the times an area is the sum of its gemeenten's also
        relations: list[Relation[int]] = []
        unpublished: list[int] = []
        for measure_at, (field, _) in enumerate(MEASURES):
            base = measure_at * span
            for line, row in enumerate(lines):
                first = base + line * width
                parts_of = members.get(row)
                region = row in self.regions
                if parts_of is not None:
                    for month in range(len(MONTH_KEYS)):
                        parts = [base + member + month for member in parts_of]
                        counts[first + month] = sum([counts[part] for part in parts])
                        relations.append(Relation(first + month, parts, total_first=region))
                for quarter, months in quarters:
                    parts = [first + month for month in months]
                    counts[first + quarter] = sum([counts[part] for part in parts])
                    relations.append(Relation(first + quarter, parts))
                parts = [first + quarter for quarter, _ in quarters]
                counts[first + year] = sum([counts[part] for part in parts])
                relations.append(Relation(first + year, parts))
                if parts_of is not None:  # an area's quarters and year are the sums of its gemeenten's too
                    for time in higher:
                        parts = [base + member + time for member in parts_of]
                        relations.append(Relation(first + time, parts, total_first=region))
                if row == NATION and self.regions:  # and the country's the sums of its regions'
                    for time in range(width):
                        relations.append(Relation(first + time, [base + member + time for member in up]))
                if row == WITHOUT and field != "meldingen":
                    unpublished.extend(range(first, first + width))
        meldingen = _MEASURE_AT["meldingen", ""] * span
        partitions = [[_MEASURE_AT[field, key] * span for key in keys] for field, keys in PARTITIONS.items()]
        several = [[_MEASURE_AT[field, key] * span for key in keys] for field, keys in SEVERAL.items()]
        for line in range(len(lines)):
            for time in range(width):
                at = line * width + time
                for bases in partitions:
                    relations.append(Relation(meldingen + at, [base + at for base in bases]))
                for bases in several:
                    relations.append(Relation(meldingen + at, [base + at for base in bases], adds_up=False))
        # An area's parts × the parts of a partition, both ways: the country's statuses are the sums of the
        # gemeenten's (and of the regions'), and the country's meldingen the sum of theirs.
        tables = [*((line_at[area] * width, parts_of) for area, parts_of in members.items())]
        if self.regions:
            tables.append((line_at[NATION] * width, up))
        grids: list[Grid[int]] = []
        for time in range(width):
            for area, places in tables:
                total = meldingen + area + time
                for bases in partitions:
                    by_row = [
                        Relation(meldingen + place + time, [base + place + time for base in bases]) for place in places
                    ]
                    grids.append(Grid(Relation(total, [base + area + time for base in bases]), by_row))
                    by_key = [Relation(base + area + time, [base + place + time for place in places]) for base in bases]
                    grids.append(Grid(Relation(total, [meldingen + place + time for place in places]), by_key))
        self._counts = counts
        self._hidden = protect_numbered(
            counts, relations, threshold=self.threshold, unpublished=unpublished, grids=grids
        )
        self._recipient_types(lines)

    def _recipient_types(self, lines: Sequence[str]) -> None:
        """Each recipient type's count, the sum of the recipient sets that hold it, shown only where that
        sum follows from the shown cells of the protected partition (`follows_from_shown`)."""
        self._recipients: dict[tuple[str, str, str], int] = {}  # (recipient type, row, time)
        self._recipients_hidden: set[tuple[str, str, str]] = set()
        counts, hidden, width, span = self._counts, self._hidden, len(TIMES), self._span
        sets = [(_MEASURE_AT["recipient_sets", key] * span, key.split("+")) for key in RECIPIENT_SETS]
        meldingen = _MEASURE_AT["meldingen", ""] * span
        for line, row in enumerate(lines):
            for at, time in enumerate(TIMES, start=line * width):
                total, parts = meldingen + at, [base + at for base, _ in sets]
                near = {cell for cell in (total, *parts) if hidden[cell]}
                for recipient_type in RECIPIENT_TYPES:
                    summed = [part for part, (_, types) in zip(parts, sets, strict=True) if recipient_type in types]
                    place = (recipient_type, row, time)
                    self._recipients[place] = sum(counts[part] for part in summed)
                    if not follows_from_shown(total, parts, summed, near):
                        self._recipients_hidden.add(place)

    def _cell(self, field: str, key: str, row: str, time: str) -> int | None:
        """The number of a cell of the protected table; None for a row without meldingen this year."""
        measure, line = _MEASURE_AT.get((field, key)), self._line_at.get(row)
        if measure is None or line is None:
            return None
        return measure * self._span + line * len(TIMES) + _TIME_AT[time]

    def count(self, field: str, key: str, row: str, time: str) -> int:
        """The true count (0 for a gemeente without meldingen this year)."""
        if field == "by_recipient_type":
            return self._recipients.get((key, row, time), 0)
        cell = self._cell(field, key, row, time)
        return 0 if cell is None else self._counts[cell]

    def shown(self, field: str, key: str, row: str, time: str) -> int | None:
        """The count as published: None where the protection hides it."""
        if field == "by_recipient_type":
            place = (key, row, time)
            return None if place in self._recipients_hidden else self._recipients.get(place, 0)
        cell = self._cell(field, key, row, time)
        if cell is None:
            return 0
        return None if self._hidden[cell] else self._counts[cell]

    def days(self, row: str, time: str) -> list[int]:
        rows = self.rows if row == NATION else self.regions.get(row, []) if _is_region(row) else [row]
        months = MONTH_KEYS if time == YEAR else QUARTERS.get(time, (time,))
        return [d for r in rows for month in months for d in self._days.get((r, month), ())]

    def period(self, label: str, row: str, time: str, *, gemeenten: Sequence[str] | None = None) -> dict[str, Any]:
        """One period's figures of one row: a gemeente, or a region or NATION with `by_gemeente` over
        `gemeenten` (NATION also with `without_gemeente`)."""

        def breakdown(field: str, keys: Iterable[str]) -> dict[str, int | None]:
            return {key: self.shown(field, key, row, time) for key in keys}

        in_time, late = self.count(*IN_TIME, row, time), self.count(*LATE, row, time)
        protected = all(self.shown(*measure, row, time) is not None for measure in (IN_TIME, LATE))
        contact_shown = self.shown(*CONTACT, row, time) is not None
        figures: dict[str, Any] = {
            "period": label,
            "meldingen": self.shown("meldingen", "", row, time),
            "by_sender_type": breakdown("by_sender_type", SENDER_TYPES),
            "by_risk_domain": breakdown("by_risk_domain", RISK_DOMAINS),
            "by_recipient_type": breakdown("by_recipient_type", RECIPIENT_TYPES),
            "by_status": breakdown("by_status", MELDING_STATUSES),
            "returned": self.shown("returned", "", row, time),
            "contact_within_deadline": shown_share(in_time, in_time + late, self.threshold) if protected else None,
            "days_to_contact": shown_percentiles(self.days(row, time) if contact_shown else [], self.threshold),
            "outcomes": breakdown("outcomes", OUTCOMES),
        }
        if gemeenten is not None:
            figures["without_gemeente"] = self.shown("meldingen", "", WITHOUT, time) if row == NATION else None
            figures["by_gemeente"] = {code: self.shown("meldingen", "", code, time) for code in gemeenten}
        return figures


def _is_region(row: str) -> bool:
    return row.startswith("GG")


class YearTables:
    """Protected year tables, kept while their facts stay the same: protecting a year is most of what a figures
    answer costs, and a coordinator's page asks about one year several times (the figures, each chart, the
    CSV). A table is found again by the year's facts themselves (compared in full, not by a hash), the day and
    the regions; the least recently used of `size` goes."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[date, int, tuple[MeldingFacts, ...]], tuple[Regions, YearTable]] = OrderedDict()

    def table(self, facts: list[MeldingFacts], today: date, regions: Regions) -> YearTable:
        key = (today, id(regions), tuple(facts))
        found = self._kept.get(key)
        if found is not None and found[0] is regions:  # the same regions object, not one at a reused id
            self._kept.move_to_end(key)
            return found[1]
        table = YearTable(facts, today, region_of=regions.region_of)
        if self.size > 0:
            self._kept[key] = (regions, table)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return table


def figures(
    facts: Iterable[MeldingFacts],
    first: date,
    last: date,
    interval: Interval,
    today: date,
    *,
    gemeente: str | None,
    region: str | None = None,
    regions: Regions = NO_REGIONS,
    tables: YearTables | None = None,
) -> list[dict[str, Any]]:
    """The figures of every period in `first`..`last` (aligned), oldest first, of `gemeente`, of `region` (a
    code of `regions`) or, with neither, of the country. `facts` must hold every melding, of every gemeente,
    of each whole year the range touches: each year is protected as one table, with the regions of `regions`
    as the level between the gemeenten and the country. The country's list every gemeente that has a melding
    in the range; a region's every gemeente it holds. `tables`: where protected years are kept between calls."""
    if gemeente is not None and region is not None:
        raise ValueError("figures of a gemeente or of a region, not both")
    starts = period_starts(first, last, interval)
    start, end = aligned(first, last, interval)
    by_year: dict[int, list[MeldingFacts]] = {year: [] for year in range(start.year, end.year + 1)}
    listed: set[str] = set()
    for melding in facts:
        if melding.created_on.year in by_year:
            by_year[melding.created_on.year].append(melding)
            if start <= melding.created_on <= end and melding.gemeente_code:
                listed.add(melding.gemeente_code)
    kept = tables or YearTables(size=0)
    protected = {
        year: kept.table(ms, today, regions) for year, ms in by_year.items() if any(s.year == year for s in starts)
    }
    gemeenten: list[str] | None
    if region is not None:
        row, gemeenten = region, list(regions.by_code[region].gemeenten)
    else:
        row, gemeenten = gemeente or NATION, (sorted(listed) if gemeente is None else None)
    return [
        protected[s.year].period(period_label(s, interval), row, _time_node(s, interval), gemeenten=gemeenten)
        for s in starts
    ]


def shows_nothing(periods: Sequence[Mapping[str, Any]]) -> bool:
    """True when a figures document shows no number at all: no period's total is shown (no meldingen, or
    too few), and every part of a hidden total is smaller still, so hidden too."""
    return not any(period["meldingen"] for period in periods)
