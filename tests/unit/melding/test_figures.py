"""The programme figures' counting and suppression (services/melding/domain/figures.py)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from services.melding.domain.figures import (
    DeliveryFacts,
    Interval,
    MeldingFacts,
    YearTables,
    aligned,
    checked_range,
    figures,
    period_label,
    period_starts,
    shown_percentiles,
    shown_share,
)
from services.melding.domain.regions import NO_REGIONS, Regions
from shared.contracts.vocabulary import DeliveryStatus as D
from shared.errors import ValidationFailed

TODAY = date(2027, 3, 15)


def melding(
    created_on: date = date(2027, 1, 10),
    *,
    sender_type: str = "verloskundige",
    status: str = "delivered",
    gemeente: str | None = "GM0363",
    domains: tuple[str, ...] = ("verslaving",),
    types: tuple[str, ...] = ("jgz",),
    deliveries: tuple[DeliveryFacts, ...] = (),
) -> MeldingFacts:
    return MeldingFacts(
        created_on=created_on,
        gemeente_code=gemeente,
        sender_type=sender_type,
        status=status,
        risk_domains=domains,
        recipient_types=types,
        deliveries=deliveries,
    )


def delivery(
    status: D = D.contact_made,
    *,
    due: date | None = date(2027, 1, 24),
    contact: date | None = None,
    outcome: str | None = None,
) -> DeliveryFacts:
    return DeliveryFacts(status=status, contact_due_on=due, contact_at=contact, outcome=outcome)


# --- suppression -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "whole", "expected"),
    [
        (20, 25, None),  # 5 missed the deadline: a small number, given away by 0.8
        (11, 12, None),
        (8, 30, None),
        (15, 30, 0.5),
        (12, 12, 1.0),  # none missed it: no person is singled out
        (0, 12, 0.0),
        (5, 9, None),  # fewer than 10 meldingen
    ],
)
def test_a_share_is_shown_only_when_neither_part_nor_rest_is_a_small_number(
    part: int, whole: int, expected: float | None
) -> None:
    assert shown_share(part, whole) == expected


def test_percentiles_need_the_threshold_number_of_values() -> None:
    assert shown_percentiles(list(range(9))) == {"p50": None, "p90": None}
    assert shown_percentiles(list(range(1, 11))) == {"p50": 5.5, "p90": 9.1}


# --- contact and periods -----------------------------------------------------------------------------------


def test_contact_in_time_looks_at_each_deliverys_own_deadline() -> None:
    in_time = melding(deliveries=(delivery(contact=date(2027, 1, 20)),))
    late = melding(deliveries=(delivery(contact=date(2027, 1, 30)),))
    missed = melding(deliveries=(delivery(D.received),))  # deadline 24 January passed by TODAY
    open_ = melding(deliveries=(delivery(D.received, due=TODAY + timedelta(days=3)),))
    returned = melding(deliveries=(delivery(D.returned), delivery(D.received, due=TODAY + timedelta(days=3))))
    either = melding(deliveries=(delivery(D.received), delivery(contact=date(2027, 1, 12))))
    assert [m.contact_in_time(TODAY) for m in (in_time, late, missed, open_, returned, either)] == [
        True,
        False,
        False,
        None,
        None,  # the returned delivery does not count; the other is still open
        True,
    ]
    assert melding(deliveries=(delivery(D.received, due=None),)).contact_in_time(TODAY) is None
    assert either.days_to_contact() == 2 and missed.days_to_contact() is None


def test_periods_are_whole_calendar_periods() -> None:
    assert aligned(date(2027, 2, 14), date(2027, 5, 2), Interval.month) == (date(2027, 2, 1), date(2027, 5, 31))
    assert aligned(date(2027, 2, 14), date(2027, 5, 2), Interval.quarter) == (date(2027, 1, 1), date(2027, 6, 30))
    assert aligned(date(2027, 2, 14), date(2028, 1, 1), Interval.year) == (date(2027, 1, 1), date(2028, 12, 31))
    starts = period_starts(date(2026, 11, 1), date(2027, 2, 28), Interval.month)
    assert [period_label(s, Interval.month) for s in starts] == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert period_label(date(2027, 4, 1), Interval.quarter) == "2027-Q2"
    assert period_label(date(2027, 4, 1), Interval.year) == "2027"


@pytest.mark.parametrize(
    ("first", "last", "interval"),
    [
        (date(2027, 5, 1), date(2027, 4, 30), Interval.month),  # backwards
        (date(2015, 1, 1), date(2027, 1, 1), Interval.month),  # before the programme
        (date(2020, 1, 1), date(2030, 1, 1), Interval.month),  # 121 months
        (date(2027, 1, 1), date(9999, 12, 31), Interval.year),  # the calendar's edge
    ],
)
def test_ranges_that_cannot_be_answered_are_refused(first: date, last: date, interval: Interval) -> None:
    with pytest.raises(ValidationFailed):
        checked_range(first, last, interval)


def test_ten_years_of_months_are_answered() -> None:
    assert checked_range(date(2020, 1, 1), date(2029, 12, 31), Interval.month) == (date(2020, 1, 1), date(2029, 12, 31))


# --- the figures -------------------------------------------------------------------------------------------


def test_a_period_counts_its_meldingen_and_suppresses_every_small_number() -> None:
    facts = [
        *(
            melding(
                domains=("verslaving", "financien-schulden"),
                types=("jgz", "wijkteam") if i < 10 else ("jgz",),
                deliveries=(delivery(D.closed, contact=date(2027, 1, 10 + i % 5), outcome="phb-done"),),
            )
            for i in range(12)
        ),
        *(melding(sender_type="huisarts", status="withdrawn", domains=("psychiatrie",)) for _ in range(3)),
        *(melding(date(2027, 2, 3)) for _ in range(10)),  # the next month
    ]
    jan, feb = figures(facts, date(2027, 1, 1), date(2027, 2, 28), Interval.month, TODAY, gemeente="GM0363")
    assert jan["period"] == "2027-01" and jan["meldingen"] == 15 and feb["meldingen"] == 10
    # 12 + 3 = 15: showing 12 would give the 3 huisarts meldingen away; the 0s beside them would say where.
    assert jan["by_sender_type"] == dict.fromkeys(jan["by_sender_type"], None)
    assert jan["by_status"] == dict.fromkeys(jan["by_status"], None)
    assert jan["by_risk_domain"]["verslaving"] == 12 and jan["by_risk_domain"]["psychiatrie"] is None
    assert jan["by_risk_domain"]["lvb"] == 0  # a true 0 points to nobody
    # 15 meldingen, 10 for both types, 5 for jgz only: 15 jgz and 10 wijkteam would give the 5 away.
    assert jan["by_recipient_type"] == {"jgz": None, "wijkteam": None}
    assert jan["outcomes"]["phb-done"] == 12 and jan["outcomes"]["declined"] == 0
    assert jan["contact_within_deadline"] == 1.0
    assert jan["days_to_contact"] == {"p50": 1.5, "p90": 3.9}  # 0,0,0,1,1,1,2,2,3,3,4,4
    assert "by_gemeente" not in jan
    assert feb["days_to_contact"] == {"p50": None, "p90": None}  # no contact yet


def test_a_recipient_type_is_shown_only_where_the_protected_partition_gives_it() -> None:
    # 30 meldingen: 15 for jgz only, 12 for wijkteam only, 3 for both. jgz 18 and wijkteam 15 beside the 30
    # would say that 3 asked for both (18 + 15 - 30): the 3 is hidden with the 12, so jgz (15 + 3) is too;
    # wijkteam (12 + 3) is 30 - 15, which the shown partition says anyway.
    facts = [
        *(melding(types=("jgz",)) for _ in range(15)),
        *(melding(types=("wijkteam",)) for _ in range(12)),
        *(melding(types=("jgz", "wijkteam")) for _ in range(3)),
    ]
    for interval in Interval:
        (first, *_) = figures(facts, date(2027, 1, 1), date(2027, 1, 31), interval, TODAY, gemeente="GM0363")
        assert first["meldingen"] == 30
        assert first["by_recipient_type"] == {"jgz": None, "wijkteam": 15}
    # Without the overlap every part is shown, and so is every type.
    facts = [*(melding(types=("jgz",)) for _ in range(15)), *(melding(types=("jgz", "wijkteam")) for _ in range(12))]
    (jan,) = figures(facts, date(2027, 1, 1), date(2027, 1, 31), Interval.month, TODAY, gemeente="GM0363")
    assert jan["by_recipient_type"] == {"jgz": 27, "wijkteam": 12}


def test_a_gemeente_without_meldingen_has_zeros() -> None:
    (year,) = figures([melding()], date(2027, 1, 1), date(2027, 1, 1), Interval.year, TODAY, gemeente="GM0014")
    assert year["meldingen"] == 0 and set(year["by_sender_type"].values()) == {0}


def test_the_countrys_figures_list_every_gemeente_in_every_period_as_parts_of_the_total() -> None:
    facts = [
        *(melding(gemeente="GM0363") for _ in range(25)),
        *(melding(gemeente="GM0599") for _ in range(11)),
        *(melding(gemeente=None, status="unroutable") for _ in range(2)),
        melding(date(2027, 1, 20), gemeente="GM0014"),
    ]
    jan, feb = figures(facts, date(2027, 1, 1), date(2027, 2, 28), Interval.month, TODAY, gemeente=None)
    # 2 without a gemeente and 1 in GM0014: hiding GM0599 (11) too makes the hidden sum 14.
    assert jan["by_gemeente"] == {"GM0014": None, "GM0363": 25, "GM0599": None}
    assert jan["without_gemeente"] is None and jan["meldingen"] == 39
    # February had none; but a 0 beside a hidden January would tell the quarter's meldingen were in January.
    assert feb["by_gemeente"] == {"GM0014": None, "GM0363": 0, "GM0599": None} and feb["meldingen"] == 0


def test_every_answer_about_a_year_is_a_slice_of_one_protected_table() -> None:
    """A month shown in a month-by-month answer would, with its quarter, give the other months away: it is
    hidden in every answer, however the range is cut."""
    facts = [*(melding(date(2027, 1, 5)) for _ in range(12)), *(melding(date(2027, 2, 5)) for _ in range(3))]
    for first, last in ((date(2027, 1, 1), date(2027, 1, 31)), (date(2027, 1, 1), date(2027, 12, 31))):
        months = figures(facts, first, last, Interval.month, TODAY, gemeente="GM0363")
        assert months[0]["meldingen"] is None  # 15 in the quarter - 12 in January = February's 3
    (quarter,) = figures(facts, date(2027, 1, 1), date(2027, 3, 31), Interval.quarter, TODAY, gemeente="GM0363")
    assert quarter["meldingen"] == 15


def test_a_share_and_the_days_to_contact_follow_the_protected_counts() -> None:
    """11 with contact in time in January and 1 in February: the quarter's share 12/12 is shown, but
    January's 11/11 beside it would say February had one, so January's is hidden."""
    on_time = (delivery(contact=date(2027, 1, 12)),)
    facts = [
        *(melding(deliveries=on_time) for _ in range(11)),
        melding(date(2027, 2, 3), deliveries=(delivery(due=date(2027, 2, 17), contact=date(2027, 2, 4)),)),
    ]
    jan, _feb, _mar = figures(facts, date(2027, 1, 1), date(2027, 3, 31), Interval.month, TODAY, gemeente="GM0363")
    assert jan["contact_within_deadline"] is None and jan["days_to_contact"] == {"p50": None, "p90": None}
    (quarter,) = figures(facts, date(2027, 1, 1), date(2027, 3, 31), Interval.quarter, TODAY, gemeente="GM0363")
    assert quarter["contact_within_deadline"] == 1.0 and quarter["days_to_contact"]["p50"] is not None


# --- GGD regions -------------------------------------------------------------------------------------------

REGIONS = Regions.from_rows(
    [
        ("GM0358", "Aalsmeer", "GG3406", "GGD Amsterdam"),
        ("GM0362", "Amstelveen", "GG3406", "GGD Amsterdam"),
        ("GM0363", "Amsterdam", "GG3406", "GGD Amsterdam"),
        ("GM0437", "Ouder-Amstel", "GG3406", "GGD Amsterdam"),
        ("GM0518", "'s-Gravenhage", "GG7014", "GGD Haaglanden"),
    ]
)


def _year(
    facts: list[MeldingFacts], regions: Regions = REGIONS, *, gemeente: str | None = None, region: str | None = None
) -> dict[str, Any]:
    (year,) = figures(
        facts, date(2027, 1, 1), date(2027, 12, 31), Interval.year, TODAY, gemeente=gemeente, region=region,
        regions=regions,
    )  # fmt: skip
    return year


def test_a_regions_figures_are_those_of_its_gemeenten_each_listed() -> None:
    facts = [
        *(melding(gemeente="GM0363") for _ in range(15)),
        *(melding(gemeente="GM0362", sender_type="huisarts") for _ in range(12)),
        *(melding(gemeente="GM0518") for _ in range(20)),
        *(melding(gemeente=None) for _ in range(10)),
    ]
    region = _year(facts, region="GG3406")
    assert region["meldingen"] == 27
    assert region["by_gemeente"] == {"GM0358": 0, "GM0362": 12, "GM0363": 15, "GM0437": 0}
    assert region["without_gemeente"] is None  # the country's alone
    assert _year(facts, region="GG7014")["meldingen"] == 20
    country = _year(facts)
    assert country["meldingen"] == 57 and country["without_gemeente"] == 10
    with pytest.raises(ValueError, match="not both"):
        figures(facts, date(2027, 1, 1), date(2027, 1, 1), Interval.year, TODAY, gemeente="GM0363", region="GG3406")


def test_a_regions_total_less_its_city_never_gives_its_village_away() -> None:
    """Amsterdam 25, Ouder-Amstel 3, Den Haag 12. For the country alone Den Haag is the 3's partner and
    Amsterdam is shown; GGD Amsterdam's 28 beside it would say Ouder-Amstel had 3. With the regions a level of
    the table, the region's relation hides its total (a region yields before its gemeenten do)."""
    facts = [
        *(melding(gemeente="GM0363") for _ in range(25)),
        *(melding(gemeente="GM0437") for _ in range(3)),
        *(melding(gemeente="GM0518") for _ in range(12)),
    ]
    assert _year(facts, regions=NO_REGIONS, gemeente="GM0363")["meldingen"] == 25  # what the regions change
    region, city = _year(facts, region="GG3406"), _year(facts, gemeente="GM0363")
    assert region["by_gemeente"]["GM0437"] is None and _year(facts, gemeente="GM0437")["meldingen"] is None
    assert region["meldingen"] is None and city["meldingen"] == 25
    assert region["by_gemeente"]["GM0363"] == city["meldingen"]  # one table: the same cell in both answers
    # And the country's less the other regions' is no way round it either.
    country = _year(facts)
    shown = [v for v in (region["meldingen"], _year(facts, region="GG7014")["meldingen"]) if v is not None]
    assert country["meldingen"] is None or len(shown) < 2 or city["meldingen"] is None


def test_a_region_without_meldingen_has_zeros_and_a_gemeente_outside_every_region_counts_in_the_country() -> None:
    facts = [*(melding(gemeente="GM0014") for _ in range(12)), *(melding(gemeente="GM0363") for _ in range(11))]
    region = _year(facts, region="GG7014")
    assert region["meldingen"] == 0 and region["by_gemeente"] == {"GM0518": 0}
    assert _year(facts)["meldingen"] == 23 and _year(facts, region="GG3406")["meldingen"] == 11


def test_a_protected_year_is_kept_while_its_facts_the_day_and_the_regions_are_the_same() -> None:
    facts = [*(melding(gemeente="GM0363") for _ in range(15)), *(melding(gemeente="GM0518") for _ in range(4))]
    kept = YearTables(size=2)
    first = kept.table(facts, TODAY, REGIONS)
    assert kept.table(list(facts), TODAY, REGIONS) is first  # equal facts, read again: the same table
    assert kept.table([*facts, melding(gemeente="GM0518")], TODAY, REGIONS) is not first  # one more melding
    assert kept.table(facts, TODAY + timedelta(days=1), REGIONS) is not first  # another day
    assert kept.table(facts, TODAY, NO_REGIONS) is not first  # other regions
    assert kept.table(facts, TODAY, REGIONS) is not first  # the least recently used went (size 2)
    # Kept or not, the answers are the same.
    args = (date(2027, 1, 1), date(2027, 12, 31), Interval.quarter, TODAY)
    assert figures(facts, *args, gemeente=None, regions=REGIONS, tables=kept) == figures(
        facts, *args, gemeente=None, regions=REGIONS
    )
