"""What an operator is told about a melding that waits: why it waits, and who returned it when (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.routing.domain.model import Candidate, Returned, RoutingStatus
from services.routing.domain.operations import ReturnedDelivery, ReturnSeen, returns_seen
from services.routing.domain.planning import (
    MeldingToRoute,
    RoutingPlan,
    Waiting,
    WaitReason,
    plan_routing,
    why_waiting,
)
from services.routing.domain.route_map import DEFAULT_ROUTE_MAP

AMSTERDAM = ("GM0363", "Amsterdam")
GGD = Candidate("87654321", "GGD Amsterdam JGZ", by_range=False)
NOORD = Candidate("33333333", "JGZ Noord", by_range=True)
MELDING = MeldingToRoute(
    recipient_types=("jgz", "wijkteam"),
    risk_domains=("verslaving", "huisvesting"),
    urgency="regular",
    consent_valid_until=date(2027, 6, 1),
    consent_recipient_types=("jgz", "wijkteam"),
    consent_risk_domains=None,
)
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _plan(candidates: dict[str, list[Candidate]], never_again: dict[str, set[str]] | None = None) -> RoutingPlan:
    return plan_routing(
        MELDING,
        withdrawn=False,
        consent_answer=None,
        route_map=DEFAULT_ROUTE_MAP,
        candidates=candidates,
        delivered_types=(),
        today=date(2026, 12, 1),
        never_again=never_again,
        chosen={},
    )


def test_a_type_nobody_serves_waits_for_an_organisation() -> None:
    plan = _plan({"jgz": [GGD], "wijkteam": []})
    assert plan.status is RoutingStatus.waiting
    assert plan.waiting == (Waiting("wijkteam", WaitReason.no_organisation),)


def test_a_type_every_server_returned_as_wrong_recipient_waits_for_another() -> None:
    plan = _plan({"jgz": [GGD, NOORD], "wijkteam": []}, never_again={"jgz": {GGD.org_id, NOORD.org_id}})
    assert plan.waiting == (
        Waiting("jgz", WaitReason.returned_by_all),
        Waiting("wijkteam", WaitReason.no_organisation),
    )
    # One that did not return it is chosen: nothing waits for it.
    assert _plan({"jgz": [GGD, NOORD], "wijkteam": [GGD]}, never_again={"jgz": {NOORD.org_id}}).waiting == ()


def test_why_it_waits_in_words_names_type_and_gemeente_and_what_to_do() -> None:
    assert why_waiting([], AMSTERDAM) is None
    said = why_waiting(
        [Waiting("jgz", WaitReason.returned_by_all), Waiting("wijkteam", WaitReason.no_organisation)], AMSTERDAM
    )
    assert said == (
        "every active jgz organisation serving gemeente Amsterdam (GM0363) returned it as the wrong recipient: "
        "name one with `org_id`, or register the right one; no active wijkteam organisation serves gemeente "
        "Amsterdam (GM0363): register one (PUT /v1/organisations/{org_id}) or name one with `org_id`"
    )
    nowhere = why_waiting([Waiting("jgz", WaitReason.no_organisation)], None)
    assert nowhere is not None and "postcode lies in no gemeente of the directory" in nowhere


def test_each_return_gets_the_name_and_time_of_its_own_delivery() -> None:
    returned = [Returned("jgz", GGD.org_id, "no-capacity"), Returned("wijkteam", "w1", "wrong-recipient")]
    later = T0 + timedelta(days=2)
    deliveries = [
        ReturnedDelivery("m", "jgz", GGD.org_id, GGD.name, later),  # the second return of the GGD
        ReturnedDelivery("m", "wijkteam", "w1", "Wijkteam Centrum", T0 + timedelta(hours=1)),
        ReturnedDelivery("m", "jgz", GGD.org_id, GGD.name, T0),
    ]
    returned.append(Returned("jgz", GGD.org_id, "wrong-recipient"))  # named again by an operator, returned again
    assert returns_seen(returned, deliveries) == [
        ReturnSeen("jgz", GGD.org_id, GGD.name, "no-capacity", T0),
        ReturnSeen("wijkteam", "w1", "Wijkteam Centrum", "wrong-recipient", T0 + timedelta(hours=1)),
        ReturnSeen("jgz", GGD.org_id, GGD.name, "wrong-recipient", later),
    ]


def test_a_return_without_its_delivery_keeps_name_and_time_unknown() -> None:
    assert returns_seen([Returned("jgz", GGD.org_id, "no-capacity")], []) == [
        ReturnSeen("jgz", GGD.org_id, None, "no-capacity", None)
    ]
