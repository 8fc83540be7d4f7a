"""The programme figures attacked the way they were broken: ask every question a `figures:read` holder can ask
about a year, write down every number shown, and let an integer program work out what the hidden numbers can
be. Each hidden count (not 0) must stay anything in a range at least `SUPPRESSION_THRESHOLD` wide: never
recovered exactly, never narrowed to "between 3 and 5".

The attacker knows the published numbers and how they add up: the meldingen of a gemeente and month are
split over sender types, over statuses and over the recipient types asked for (jgz only, wijkteam only or
both: `jgz` counts the first and the last); a risk domain, outcome or return counts each melding at most
once (and every melding names at least one risk domain); quarters
are the sums of their months, the year of its quarters, a GGD region of its gemeenten, the country of its
gemeenten and the meldingen no gemeente could be found for. Its unknowns are the counts per gemeente and month,
whole numbers from 0. A region holds a city and a village (the region less the city would be the village), and
one holds a single gemeente (the region is the gemeente).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Any

import highspy
import pytest

from services.melding.adapters.regions import shipped_regions
from services.melding.domain.figures import (
    MELDING_STATUSES,
    OUTCOMES,
    RISK_DOMAINS,
    SUPPRESSION_THRESHOLD,
    DeliveryFacts,
    Interval,
    MeldingFacts,
    figures,
)
from shared.contracts.vocabulary import RECIPIENT_TYPES, SENDER_TYPES
from shared.contracts.vocabulary import DeliveryStatus as D

YEAR = 2026
TODAY = date(2027, 3, 1)  # every deadline of the year has passed
# Amsterdam and Ouder-Amstel (GGD Amsterdam), Den Haag (GGD Haaglanden), unplaced.
GEMEENTEN = {"GM0363": 0.6, "GM0518": 0.27, "GM0437": 0.1, None: 0.03}
REGIONS = shipped_regions()
PARTITIONS = {"by_sender_type": SENDER_TYPES, "by_status": MELDING_STATUSES}
SEVERAL = {"by_risk_domain": RISK_DOMAINS, "outcomes": OUTCOMES, "returned": ("",)}
AT_LEAST_ONE = ("by_risk_domain",)  # every melding names one or more
# Every melding asks for jgz only, wijkteam only or both: the attacker's unknowns are those three.
RECIPIENT_SETS = {"jgz": ("jgz",), "wijkteam": ("wijkteam",), "jgz+wijkteam": RECIPIENT_TYPES}
WITHOUT = "(none)"
COUNTRY = "(country)"
MONTHS = tuple(range(1, 13))


def _weighted(rng: random.Random, weights: Mapping[Any, float]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def programme(seed: int, size: int) -> list[MeldingFacts]:
    """`size` meldingen over a year: most in one city, few in a village, many small counts."""
    rng = random.Random(seed)
    senders = {"verloskundige": 45, "huisarts": 30, "gynaecoloog": 15, "volwassenen-ggz": 6, "verslavingszorg": 4}
    statuses = {"delivered": 85, "withdrawn": 5, "cancelled": 4, "not_delivered": 3, "unroutable": 3}
    domains = dict(zip(RISK_DOMAINS, (14, 8, 5, 10, 7, 9, 6, 8, 4, 5, 3, 2), strict=True))
    outcomes = {"phb-done": 50, "support-started": 25, "declined": 10, "no-contact": 7, "moved": 3, "other": 5}
    facts = []
    for _ in range(size):
        created = date(YEAR, 1, 1) + timedelta(days=rng.randrange(365))
        status = _weighted(rng, statuses)
        types = ("jgz", "wijkteam") if rng.random() < 0.3 else (rng.choice(RECIPIENT_TYPES),)
        deliveries = []
        if status == "delivered":
            for _type in types:
                due = created + timedelta(days=14)
                if rng.random() < 0.08:
                    deliveries.append(DeliveryFacts(D.returned, due, None, None))
                    continue
                contact = created + timedelta(days=rng.randrange(25)) if rng.random() < 0.85 else None
                outcome = _weighted(rng, outcomes) if contact and rng.random() < 0.8 else None
                deliveries.append(DeliveryFacts(D.closed if outcome else D.received, due, contact, outcome))
        facts.append(
            MeldingFacts(
                created_on=created,
                gemeente_code=_weighted(rng, GEMEENTEN),
                sender_type=_weighted(rng, senders),
                status=status,
                risk_domains=tuple(rng.sample(list(domains), k=rng.choice((1, 1, 2, 2, 3)), counts=None)),
                recipient_types=types,
                deliveries=tuple(deliveries),
            )
        )
    return facts


# --- every question, every number shown ---------------------------------------------------------------------

Cell = tuple[str, str, str, tuple[int, ...]]  # field, key, gemeente (or region / COUNTRY / WITHOUT), months


def _months(label: str) -> tuple[int, ...]:
    if "-Q" in label:
        quarter = int(label[-1])
        return tuple(range(3 * quarter - 2, 3 * quarter + 1))
    if "-" in label:
        return (int(label[-2:]),)
    return MONTHS


def _questions(codes: list[str]) -> Iterator[tuple[dict[str, str | None], date, date, Interval]]:
    """Every gemeente, every region of one and the country, by month, quarter and year, over the year and over
    sub-ranges."""
    ranges = [(date(YEAR, 1, 1), date(YEAR, 12, 31)), (date(YEAR, 3, 1), date(YEAR, 8, 31)),
              (date(YEAR, 11, 1), date(YEAR + 1, 1, 31)), (date(YEAR - 1, 12, 1), date(YEAR, 2, 28))]  # fmt: skip
    regions = sorted({REGIONS.region_of[code] for code in codes})
    areas: list[dict[str, str | None]] = [{"gemeente": code} for code in codes]
    areas += [{"gemeente": None, "region": region} for region in regions] + [{"gemeente": None}]
    for area in areas:
        for first, last in ranges:
            for interval in Interval:
                yield area, first, last, interval


def published(facts: list[MeldingFacts]) -> tuple[dict[Cell, int | None], set[Cell]]:
    """Every number of every answer about the year, by what it counts (shown where any answer shows it), and
    the cells one answer shows and another hides."""
    codes = sorted({m.gemeente_code for m in facts if m.gemeente_code})
    seen: dict[Cell, int | None] = {}
    differing: set[Cell] = set()

    def note(cell: Cell, value: int | None) -> None:
        if cell in seen and seen[cell] != value:
            differing.add(cell)
        if seen.get(cell) is None:
            seen[cell] = value

    for area, first, last, interval in _questions(codes):
        for period in figures(
            facts, first, last, interval, TODAY, gemeente=area["gemeente"], region=area.get("region"), regions=REGIONS
        ):
            if not period["period"].startswith(str(YEAR)):
                continue
            row, months = area["gemeente"] or area.get("region") or COUNTRY, _months(period["period"])
            # A region of one gemeente (in this data) counts what that gemeente counts: one cell, which every
            # answer must show or hide alike, and one hidden count for the attacker to weigh, not two.
            alone = [code for code in codes if REGIONS.region_of[code] == row]
            row = alone[0] if len(alone) == 1 else row
            note(("meldingen", "", row, months), period["meldingen"])
            note(("returned", "", row, months), period["returned"])
            for field in (*PARTITIONS, "by_risk_domain", "by_recipient_type", "outcomes"):
                for key, value in period[field].items():
                    note((field, key, row, months), value)
            if row == COUNTRY:
                note(("meldingen", "", WITHOUT, months), period["without_gemeente"])
            if row == COUNTRY or area.get("region"):
                for code, value in period["by_gemeente"].items():
                    if code in codes:  # the region's other gemeenten: 0, and no unknown of the attacker's
                        note(("meldingen", "", code, months), value)
                    else:
                        assert value == 0, (row, code)
    return seen, differing


# --- the attacker ------------------------------------------------------------------------------------------


class Attacker:
    """An integer program of the unknown counts per gemeente and month consistent with every shown number
    (HiGHS, in process: the same program re-solved for each hidden cell)."""

    def __init__(self, rows: list[str], shown: dict[Cell, int]) -> None:
        self.rows = rows
        self.program = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy ships no annotations for it
        self.program.setOptionValue("output_flag", False)
        self.atoms: dict[tuple[str, str, str, int], Any] = {}
        fields = {"meldingen": ("",), **PARTITIONS, **SEVERAL}
        for row in rows:
            for month in MONTHS:
                for field, keys in fields.items():
                    for key in keys:
                        self.atoms[field, key, row, month] = self.program.addIntegral(lb=0, ub=1000)
                total = self.atoms["meldingen", "", row, month]
                for field, keys in PARTITIONS.items():
                    self.program.addConstr(self.program.qsum(self.atoms[field, k, row, month] for k in keys) == total)
                for field, keys in SEVERAL.items():
                    for key in keys:
                        self.program.addConstr(self.atoms[field, key, row, month] <= total)
                    if field in AT_LEAST_ONE:
                        self.program.addConstr(
                            self.program.qsum(self.atoms[field, k, row, month] for k in keys) >= total
                        )
                sets = {key: self.program.addIntegral(lb=0, ub=1000) for key in RECIPIENT_SETS}
                self.program.addConstr(self.program.qsum(sets.values()) == total)
                for recipient_type in RECIPIENT_TYPES:
                    asking = [sets[key] for key, types in RECIPIENT_SETS.items() if recipient_type in types]
                    self.atoms["by_recipient_type", recipient_type, row, month] = self.program.qsum(asking)
        for cell, value in shown.items():
            self.program.addConstr(self.expression(cell) == value)

    def expression(self, cell: Cell) -> Any:
        field, key, row, months = cell
        return self.program.qsum(self.atoms[field, key, r, month] for r in _rows_of(row, self.rows) for month in months)

    def track(self, cells: dict[Cell, int]) -> None:
        """Watch these cells (with their true counts): every solution found widens the span of values each is
        seen to take, and a span of `SUPPRESSION_THRESHOLD` shows its range is that wide (each solution is
        consistent with everything shown, the truth too)."""
        self.expressions = {cell: self.expression(cell) for cell in cells}
        self.spans = {cell: [float(value), float(value)] for cell, value in cells.items()}

    def wide(self, cell: Cell) -> bool:
        low, high = self.spans[cell]
        return high - low >= SUPPRESSION_THRESHOLD - 0.5

    def _seen(self) -> set[Cell]:
        """Widen the spans of the watched cells not yet wide by the solution just found; those now wide."""
        assert self.program.getModelStatus() == highspy.HighsModelStatus.kOptimal
        found = set()
        for cell, span in self.spans.items():
            if span[1] - span[0] >= SUPPRESSION_THRESHOLD - 0.5:
                continue
            value = self.program.val(self.expressions[cell])
            span[0], span[1] = min(span[0], value), max(span[1], value)
            if span[1] - span[0] >= SUPPRESSION_THRESHOLD - 0.5:
                found.add(cell)
        return found

    def push(self, rounds: int = 60) -> None:
        """Push the watched cells not yet wide up, down and in random directions, many at a time, until a few
        pushes in a row widen none."""
        rng = random.Random(0)
        fruitless = 0
        for round_ in range(rounds):
            left = [cell for cell in self.spans if not self.wide(cell)]
            if not left or fruitless == 5:
                break
            signs = [1 if round_ == 0 else -1 if round_ == 1 else rng.choice((1, -1)) for _ in left]
            self.program.maximize(
                self.program.qsum(sign * self.expressions[cell] for sign, cell in zip(signs, left, strict=True))
            )
            fruitless = 0 if self._seen() else fruitless + 1

    def extreme(self, cell: Cell, *, most: bool) -> int:
        """The most (or the least) the cell can be, given everything shown (its solution widens the spans of
        every watched cell)."""
        (self.program.maximize if most else self.program.minimize)(self.expressions[cell])
        self._seen()
        return round(self.program.getInfo().objective_function_value)


def _rows_of(row: str, rows: list[str]) -> list[str]:
    """The gemeenten (and WITHOUT) whose counts a row adds up: the country all, a region its own."""
    if row == COUNTRY:
        return rows
    if row in REGIONS.by_code:
        return [r for r in rows if REGIONS.region_of.get(r) == row]
    return [row]


def true_counts(facts: list[MeldingFacts]) -> Counter[tuple[str, str, str, int]]:
    """What the attacker is after: the count of every atom."""
    counts: Counter[tuple[str, str, str, int]] = Counter()
    for m in facts:
        row, month = m.gemeente_code or WITHOUT, m.created_on.month
        measures = [("meldingen", ""), ("by_sender_type", m.sender_type), ("by_status", m.status)]
        measures += [("by_risk_domain", d) for d in set(m.risk_domains)]
        measures += [("by_recipient_type", t) for t in set(m.recipient_types)]
        measures += [("outcomes", o) for o in m.outcomes] + ([("returned", "")] if m.returned else [])
        for field, key in measures:
            counts[field, key, row, month] += 1
    return counts


@pytest.mark.parametrize(("seed", "size"), [(40, 40), (60, 60), (100, 100), (150, 150)])
def test_no_hidden_count_can_be_worked_out_from_every_answer_about_a_year(seed: int, size: int) -> None:
    facts = programme(seed, size)
    answers, differing = published(facts)
    rows = [*sorted({m.gemeente_code for m in facts if m.gemeente_code}), WITHOUT]
    attacker = Attacker(rows, {cell: value for cell, value in answers.items() if value is not None})
    truth = true_counts(facts)

    def true(cell: Cell) -> int:
        field, key, row, months = cell
        return sum(truth[field, key, r, m] for r in _rows_of(row, rows) for m in months)

    for cell, value in answers.items():
        assert value is None or value == true(cell), cell  # counts stay exact
    hidden = [cell for cell, value in answers.items() if value is None and true(cell) > 0]
    assert len(hidden) > 50  # the data set is one of many small numbers
    narrowed = []
    attacker.track({cell: true(cell) for cell in hidden})
    attacker.push()
    for cell in hidden:
        if attacker.wide(cell):
            continue  # two solutions consistent with everything shown lie that far apart
        value, most = true(cell), attacker.extreme(cell, most=True)
        assert most >= value
        if attacker.wide(cell):
            continue
        least = attacker.extreme(cell, most=False)
        assert least <= value
        if most - least < SUPPRESSION_THRESHOLD:
            narrowed.append(f"{cell[2]} {cell[3]} {cell[0]} {cell[1]} = {value}: {least}..{most}")
    assert not narrowed, f"{len(narrowed)} of {len(hidden)} hidden counts narrowed down:\n" + "\n".join(narrowed)
    assert not differing, f"shown in one answer, hidden in another: {sorted(differing)}"
