"""Routing's rules (services/routing/domain/model.py): who serves an address, how a delivery's status moves,
and when the consent a melding was accepted under no longer lets it go out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.routing.domain.model import (
    Answered,
    Candidate,
    DeliveryRecord,
    LoggedMessage,
    Pc4Range,
    Report,
    Returned,
    RoutedMelding,
    RoutingStatus,
    answer_report,
    check_acting_as,
    check_organisation_id,
    choose,
    consent_refusal,
    intake_check_is_fresh,
    merge_ranges,
    message_again,
    next_status,
    when_stopped,
)
from services.routing.domain.model import (
    WhenStopped as W,
)
from shared.contracts.vocabulary import DeliveryStatus as D
from shared.errors import Conflict, Forbidden, ValidationFailed

TODAY = date(2026, 12, 1)


def test_a_postcode_range_beats_a_whole_gemeente() -> None:
    gemeente, street = Candidate("22222222", "GGD", False), Candidate("33333333", "Buurt-JGZ", True)
    assert choose([gemeente, street]) == street
    assert choose([gemeente]) == gemeente
    assert choose([]) is None


def test_of_equals_the_lowest_id_is_chosen_so_that_every_replica_agrees() -> None:
    assert choose([Candidate("9", "b", True), Candidate("1", "a", True)]) == Candidate("1", "a", True)


@pytest.mark.parametrize(
    ("current", "reported", "expected"),
    [(D.queued, D.received, D.received), (D.received, D.closed, D.closed), (D.received, D.received, None)],
)
def test_a_recipient_moves_its_delivery_forward(current: D, reported: D, expected: D | None) -> None:
    assert next_status(current, reported) is expected


def test_going_back_or_touching_a_retracted_delivery_is_a_conflict() -> None:
    with pytest.raises(Conflict, match="back from closed to received"):
        next_status(D.closed, D.received)
    with pytest.raises(Conflict, match="retracted"):
        next_status(D.retracted, D.closed)


def test_consecutive_postcode_areas_merge_into_ranges() -> None:
    assert merge_ranges(["1014", "1011", "1012", "1012"]) == [Pc4Range("1011", "1012"), Pc4Range("1014", "1014")]
    assert merge_ranges([]) == []


def test_a_range_must_not_run_backwards() -> None:
    with pytest.raises(ValidationFailed):
        Pc4Range("1100", "1011")


@pytest.mark.parametrize(
    ("valid_until", "consented", "requested", "expected"),
    [
        (TODAY, ["jgz"], ["jgz"], None),  # valid through the whole of its last day
        (TODAY - timedelta(days=1), ["jgz"], ["jgz"], "expired"),
        (TODAY, ["jgz"], ["jgz", "wijkteam"], "out-of-scope"),
        (TODAY, ["jgz", "wijkteam"], ["wijkteam"], None),
    ],
)
def test_consent_at_delivery_time(
    valid_until: date, consented: list[str], requested: list[str], expected: str | None
) -> None:
    assert (
        consent_refusal(valid_until=valid_until, consented_types=consented, requested_types=requested, today=TODAY)
        == expected
    )


def test_an_intake_check_is_fresh_both_ways_within_the_window() -> None:
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    window = timedelta(seconds=30)
    assert intake_check_is_fresh(at - timedelta(seconds=10), at, within=window)
    assert intake_check_is_fresh(at + timedelta(seconds=10), at, within=window)  # a clock running ahead
    assert not intake_check_is_fresh(at - timedelta(minutes=5), at, within=window)
    assert not intake_check_is_fresh(at + timedelta(minutes=5), at, within=window)


@pytest.mark.parametrize(
    ("org_id", "org_type", "ok"),
    [
        ("12345678", "jgz", True),
        ("wijkteam-centrum", "wijkteam", True),
        ("wijkteam-centrum", "jgz", False),
        ("1234567", "jgz", False),
        ("wijkteam-", "wijkteam", False),
        ("Wijkteam-Centrum", "wijkteam", False),
    ],
)
def test_organisation_ids(org_id: str, org_type: str, ok: bool) -> None:
    if ok:
        check_organisation_id(org_id, org_type)
    else:
        with pytest.raises(ValidationFailed):
            check_organisation_id(org_id, org_type)


def test_only_new_and_waiting_meldingen_are_routed() -> None:
    assert {s for s in RoutingStatus if s.routable} == {RoutingStatus.new, RoutingStatus.waiting}


def _logged(full: bool, message_type: str = "melding.delivered") -> LoggedMessage:
    thin = {"delivery_id": "d-1", "melding_id": "m-1", "href": "/v1/deliveries/d-1", "sequence": 7}
    return LoggedMessage("87654321", 7, "d-1", message_type, "d-1", thin, full)


def _held(message: dict[str, Any]) -> DeliveryRecord:
    at = datetime(2026, 11, 20, tzinfo=UTC)
    return DeliveryRecord("d-1", "m-1", "87654321", "GGD", "jgz", D.queued, message, at, at)


def test_a_full_delivery_is_given_again_with_its_content_while_it_is_held_and_thin_once_it_is_gone() -> None:
    content = {"delivery_id": "d-1", "melding_id": "m-1", "patient": {"bsn": "999999990"}}
    again = message_again(_logged(full=True), _held(content))
    assert again == {**content, "type": "melding.delivered", "message_id": "d-1", "sequence": 7}
    retracted = message_again(_logged(full=True), _held({"delivery_id": "d-1", "reason": "consent-withdrawn"}))
    assert retracted["href"] == "/v1/deliveries/d-1" and "patient" not in retracted
    thin = message_again(_logged(full=False), None)  # a thin organisation's: as it went on the queue
    assert thin == {**_logged(full=False).body, "type": "melding.delivered", "message_id": "d-1"}


def test_stopping_a_melding_retracts_only_its_live_deliveries_and_leaves_a_returned_one_returned() -> None:
    assert {s: when_stopped(s) for s in D} == {
        D.queued: W.retract,
        D.received: W.retract,
        D.contact_made: W.retract,
        D.closed: W.retract,
        D.returned: W.clear,  # it made way for the next delivery of its type: two rows must not both be live
        D.retracted: W.keep,
    }


def test_a_recipient_acts_only_as_the_type_the_directory_has_it_as() -> None:
    check_acting_as("jgz", "jgz")
    check_acting_as(None, "wijkteam")  # unknown to the directory: it holds nothing to find
    for registered, token in (("jgz", "wijkteam"), ("wijkteam", "jgz")):
        with pytest.raises(Forbidden):
            check_acting_as(registered, token)


def _delivery(status: D, **answer: Any) -> DeliveryRecord:
    at = datetime(2026, 11, 20, 10, tzinfo=UTC)
    return DeliveryRecord("d-1", "m-1", "87654321", "GGD", "jgz", status, {}, at, at, **answer)


def _answer(delivery: DeliveryRecord, status: D, **report: Any) -> object:
    return answer_report(delivery, Report(status, **report), today=TODAY, delivered_on=date(2026, 11, 20))


CONTACT = date(2026, 11, 25)


@pytest.mark.parametrize("outcome", ["phb-done", "support-started"])
def test_closing_with_an_outcome_after_contact_needs_the_day_of_contact(outcome: str) -> None:
    received = _delivery(D.received)
    with pytest.raises(ValidationFailed):  # straight from received, without a day: the day would be lost
        _answer(received, D.closed, outcome=outcome)
    closed = _answer(received, D.closed, outcome=outcome, contact_at=CONTACT)  # the report records the contact
    assert closed == Answered(D.closed, contact_at=CONTACT, outcome=outcome)
    after_contact = _answer(_delivery(D.contact_made, contact_at=CONTACT), D.closed, outcome=outcome)
    assert after_contact == Answered(D.closed, contact_at=CONTACT, outcome=outcome)
    with pytest.raises(ValidationFailed):  # the day is checked as contact_made's is
        _answer(received, D.closed, outcome=outcome, contact_at=date(2099, 1, 1))


@pytest.mark.parametrize("outcome", ["declined", "no-contact", "moved", "other", None])
def test_other_outcomes_close_straight_from_received(outcome: str | None) -> None:
    assert _answer(_delivery(D.received), D.closed, outcome=outcome) == Answered(
        D.closed, outcome=outcome or "not-reported"
    )


def test_the_same_report_twice_changes_nothing_and_one_that_says_otherwise_is_a_conflict() -> None:
    closed = _delivery(D.closed, contact_at=CONTACT, outcome="phb-done", status_note="Gezin ondersteund.")
    assert _answer(closed, D.closed, outcome="phb-done", contact_at=CONTACT) is None
    assert _answer(closed, D.closed, outcome="phb-done", note="Gezin ondersteund.") is None
    assert _answer(closed, D.closed) is None  # what a repeat leaves out it does not contradict
    for other in ({"outcome": "declined"}, {"contact_at": date(2026, 11, 24)}, {"note": "Anders."}):
        with pytest.raises(Conflict):
            _answer(closed, D.closed, **other)
    declined = _delivery(D.closed, outcome="declined")
    with pytest.raises(Conflict):  # no day was recorded: one now would be dropped
        _answer(declined, D.closed, outcome="declined", contact_at=CONTACT)


def test_contact_made_twice_with_another_day_is_a_conflict_and_so_is_closing_with_another_day() -> None:
    made = _delivery(D.contact_made, contact_at=CONTACT)
    assert _answer(made, D.contact_made, contact_at=CONTACT) is None
    assert _answer(made, D.contact_made) is None
    with pytest.raises(Conflict):
        _answer(made, D.contact_made, contact_at=date(2026, 11, 24))
    with pytest.raises(Conflict):
        _answer(made, D.closed, outcome="phb-done", contact_at=date(2026, 11, 24))


def test_a_return_again_with_another_reason_is_a_conflict() -> None:
    returned = _delivery(D.returned, returned_reason="no-capacity")
    assert _answer(returned, D.returned, returned_reason="no-capacity") is None
    with pytest.raises(Conflict):
        _answer(returned, D.returned, returned_reason="wrong-recipient")


def test_a_returned_type_waits_for_an_operator_and_a_type_no_one_serves_for_the_directory() -> None:
    """The returned-type rule, said once: the scheduled reroute passes returned types by, an operator may name
    an organisation for a returned or unroutable type and for no other."""
    at = datetime(2026, 12, 1, tzinfo=UTC)
    melding = RoutedMelding(
        melding_id="m-1",
        consent_id="c-1",
        sender_org_id="12345678",
        status=RoutingStatus.waiting,
        accepted=None,
        requested_types=("jgz", "wijkteam", "huisarts"),
        unroutable_types=("jgz", "wijkteam"),
        gemeente_code="GM0363",
        created_at=at,
        updated_at=at,
        returned=(Returned("jgz", "22222222", "wrong-recipient"),),
    )
    assert melding.waiting_for_the_directory() == ["wijkteam"]
    assert [t for t in ("jgz", "wijkteam", "huisarts") if melding.waits_for(t)] == ["jgz", "wijkteam"]


def test_related_deliveries_are_the_same_pregnancy_at_the_same_organisation_from_another_sender() -> None:
    from services.routing.domain.model import PatientDelivery, related_deliveries
    from tests.unit.routing.test_handlers import accepted

    new = accepted()  # sent by 10000001
    due, day = new.content.pregnancy.expected_due_date, timedelta(days=1)
    earlier = [
        PatientDelivery("same-pregnancy", "87654321", "m-1", "10000002", due + 60 * day),
        PatientDelivery("too-far", "87654321", "m-2", "10000002", due + 61 * day),
        PatientDelivery("same-sender", "87654321", "m-3", "10000001", due),
        PatientDelivery("other-organisation", "12345678", "m-4", "10000002", due),
        PatientDelivery("itself", "87654321", new.melding_id, "10000002", due),
        PatientDelivery("before-edge", "87654321", "m-5", "10000003", due - 60 * day),
        PatientDelivery("too-early", "87654321", "m-6", "10000003", due - 61 * day),
    ]
    assert related_deliveries(earlier, new, "87654321") == ["same-pregnancy", "before-edge"]
