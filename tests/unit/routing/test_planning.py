"""Routing's decision (services/routing/domain/planning.py), case by case, without I/O."""

from __future__ import annotations

from datetime import date, timedelta

from services.routing.domain.model import Candidate, NotDeliveredReason, RoutingStatus, SkipReason
from services.routing.domain.planning import (
    MeldingToRoute,
    RoutingPlan,
    plan_routing,
    types_needing_candidates,
)
from services.routing.domain.route_map import DEFAULT_ROUTE_MAP, RecipientRule, RouteMap, in_force

TODAY = date(2026, 12, 1)
SOCIAL = frozenset({"huiselijk-geweld", "financien-schulden", "huisvesting", "sociaal-netwerk"})
JGZ_GEMEENTE = Candidate("22222222", "GGD JGZ", by_range=False)
JGZ_STREET = Candidate("33333333", "JGZ Noord", by_range=True)
WIJKTEAM = Candidate("wijkteam-centrum", "Wijkteam Centrum", by_range=False)
COALITION = RouteMap(
    effective_from=date(2026, 1, 1),
    recipients={"jgz": RecipientRule(), "wijkteam": RecipientRule(SOCIAL, note=False)},
    contact_deadline={"regular": timedelta(days=10), "urgent": timedelta(days=1)},
)


def melding(
    domains: tuple[str, ...] = ("verslaving", "financien-schulden"),
    types: tuple[str, ...] = ("jgz", "wijkteam"),
    consent_domains: tuple[str, ...] | None = None,
    valid_until: date = date(2027, 6, 1),
    urgency: str = "regular",
) -> MeldingToRoute:
    return MeldingToRoute(
        recipient_types=types,
        risk_domains=domains,
        urgency=urgency,
        consent_valid_until=valid_until,
        consent_recipient_types=("jgz", "wijkteam"),
        consent_risk_domains=consent_domains,
    )


def plan(
    m: MeldingToRoute,
    *,
    route_map: RouteMap = COALITION,
    candidates: dict[str, list[Candidate]] | None = None,
    withdrawn: bool = False,
    answer: str | None = None,
    delivered: tuple[str, ...] = (),
) -> RoutingPlan:
    found = {"jgz": [JGZ_GEMEENTE], "wijkteam": [WIJKTEAM]} if candidates is None else candidates
    return plan_routing(
        m,
        withdrawn=withdrawn,
        consent_answer=answer,
        route_map=route_map,
        candidates=found,
        delivered_types=delivered,
        today=TODAY,
    )


def test_each_recipient_gets_only_its_share() -> None:
    result = plan(melding())
    assert result.status is RoutingStatus.routed and not result.skipped and not result.unroutable
    jgz, wijkteam = result.deliveries
    assert (jgz.org_id, jgz.risk_domains, jgz.note) == (JGZ_GEMEENTE.org_id, ("verslaving", "financien-schulden"), True)
    assert (wijkteam.org_id, wijkteam.risk_domains, wijkteam.note) == (WIJKTEAM.org_id, ("financien-schulden",), False)
    assert jgz.contact_deadline == timedelta(days=10)


def test_a_type_whose_rule_admits_none_of_the_domains_is_skipped_not_unroutable() -> None:
    result = plan(melding(domains=("verslaving", "psychiatrie")))
    assert result.status is RoutingStatus.routed
    assert [d.recipient_type for d in result.deliveries] == ["jgz"]
    assert [(s.recipient_type, s.reason) for s in result.skipped] == [("wijkteam", SkipReason.route_map)]


def test_a_type_absent_from_the_route_map_receives_nothing() -> None:
    only_jgz = RouteMap(date(2026, 1, 1), {"jgz": RecipientRule()})
    result = plan(melding(types=("wijkteam",), domains=("huisvesting",)), route_map=only_jgz)
    assert result.status is RoutingStatus.not_delivered and result.not_delivered_reason is NotDeliveredReason.route_map
    assert [s.recipient_type for s in result.skipped] == ["wijkteam"] and not result.deliveries


def test_every_type_skipped_is_not_delivered() -> None:
    result = plan(melding(types=("wijkteam",), domains=("verslaving",)))
    assert (result.status, result.not_delivered_reason) == (RoutingStatus.not_delivered, NotDeliveredReason.route_map)


def test_a_withdrawal_lets_nothing_out() -> None:
    assert plan(melding(), withdrawn=True) == RoutingPlan(RoutingStatus.withdrawn)
    assert plan(melding(), answer="withdrawn") == RoutingPlan(RoutingStatus.withdrawn)


def test_a_consent_expired_before_routing_is_not_delivered() -> None:
    result = plan(melding(valid_until=TODAY - timedelta(days=1)))
    assert (result.status, result.not_delivered_reason, result.consent_refusal) == (
        RoutingStatus.not_delivered,
        NotDeliveredReason.consent_expired,
        "expired",
    )
    assert not result.deliveries


def test_a_consent_that_does_not_cover_a_domain_lets_nothing_out() -> None:
    result = plan(melding(consent_domains=("financien-schulden",)))
    assert (result.status, result.consent_refusal) == (RoutingStatus.not_delivered, "out-of-scope")
    assert result.not_delivered_reason is NotDeliveredReason.consent_refused


def test_the_consent_services_refusal_counts_when_it_was_asked() -> None:
    result = plan(melding(), answer="expired")
    assert result.not_delivered_reason is NotDeliveredReason.consent_expired


def test_a_postcode_range_beats_a_whole_gemeente() -> None:
    result = plan(melding(types=("jgz",)), candidates={"jgz": [JGZ_GEMEENTE, JGZ_STREET]})
    assert [d.org_id for d in result.deliveries] == [JGZ_STREET.org_id]


def test_an_admitted_type_nobody_serves_waits() -> None:
    result = plan(melding(), candidates={"jgz": [JGZ_GEMEENTE]})
    assert result.status is RoutingStatus.waiting and result.unroutable == ("wijkteam",)
    assert [d.recipient_type for d in result.deliveries] == ["jgz"]


def test_routed_again_only_the_types_still_missing_are_planned() -> None:
    result = plan(melding(), delivered=("jgz",))
    assert result.status is RoutingStatus.routed and [d.recipient_type for d in result.deliveries] == ["wijkteam"]
    nothing_new = plan(melding(types=("jgz",)), delivered=("jgz",))
    assert nothing_new.status is RoutingStatus.routed and not nothing_new.deliveries


def test_the_default_route_map_sends_everything_everywhere_with_the_default_deadlines() -> None:
    result = plan(melding(urgency="urgent"), route_map=DEFAULT_ROUTE_MAP)
    assert all(d.note and d.risk_domains == ("verslaving", "financien-schulden") for d in result.deliveries)
    assert {d.contact_deadline for d in result.deliveries} == {timedelta(days=2)}


def test_the_version_in_force_is_the_latest_that_has_started() -> None:
    later = RouteMap(TODAY + timedelta(days=1), {"jgz": RecipientRule()})
    assert in_force([COALITION, later], TODAY) is COALITION
    assert in_force([COALITION, later], TODAY + timedelta(days=1)) is later
    assert in_force([later], TODAY) is DEFAULT_ROUTE_MAP


def test_the_route_map_says_once_what_a_type_receives_or_that_it_is_skipped() -> None:
    """`share_for` is the one allow check: planning and the candidate lookup both ask it."""
    rule = COALITION.rule_for("wijkteam")
    assert COALITION.share_for("wijkteam", ["verslaving", *SOCIAL]) == (rule, tuple(SOCIAL))
    assert COALITION.share_for("wijkteam", ["verslaving"]) is None
    assert COALITION.share_for("huisarts", list(SOCIAL)) is None
    to_route = melding(domains=("verslaving",))
    assert types_needing_candidates(to_route, COALITION, delivered_types=()) == ["jgz"]
