"""The melding's status rules (services/melding/domain/model.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.melding.domain.model import Melding, MeldingStatus, OpenCandidate, open_melding_among, skeleton_of
from shared.contracts.vocabulary import DeliveryStatus as D

AT = datetime(2026, 12, 1, tzinfo=UTC)


def new() -> Melding:
    return Melding(id="m-1", status=MeldingStatus.accepted)


def test_a_first_delivery_makes_it_delivered() -> None:
    melding = new()
    assert melding.report_delivery("d-1", D.queued) is D.queued
    assert melding.status is MeldingStatus.delivered


def test_routing_finding_no_recipient_makes_it_unroutable_until_a_delivery_exists() -> None:
    melding = new()
    melding.routing_found_no_recipient()
    before_delivery = melding.status
    assert before_delivery is MeldingStatus.unroutable
    melding.report_delivery("d-1", D.queued)
    assert melding.status is MeldingStatus.delivered


@pytest.mark.parametrize(
    ("current", "reported", "expected"),
    [
        (D.queued, D.received, D.received),
        (D.received, D.closed, D.closed),
        (D.closed, D.received, None),  # a late report changes nothing
        (D.contact_made, D.contact_made, None),
        (D.closed, D.retracted, D.retracted),
        (D.retracted, D.closed, None),  # retracted is final
    ],
)
def test_a_delivery_moves_forward_only(current: D, reported: D, expected: D | None) -> None:
    melding = new()
    melding.report_delivery("d-1", current)
    assert melding.report_delivery("d-1", reported) is expected
    assert melding.deliveries["d-1"] is (expected or current)


def test_withdrawal_overrides_every_other_status_and_happens_once() -> None:
    melding = new()
    melding.report_delivery("d-1", D.received)
    assert melding.withdraw(AT) is True
    assert melding.status is MeldingStatus.withdrawn
    melding.report_delivery("d-1", D.retracted)
    assert melding.status is MeldingStatus.withdrawn
    assert melding.withdraw(AT) is False


def test_the_skeleton_keeps_no_person() -> None:
    content = {
        "patient": {"bsn": "999999990"},
        "note": "n",
        "contact": {"name": "x"},
        "risk_domains": ["verslaving"],
        "recipient_types": ["jgz"],
        "pregnancy": {"expected_due_date": "2027-05-01"},
        "urgency": "regular",
    }
    assert skeleton_of(content) == {
        "pregnancy": {"expected_due_date": "2027-05-01"},
        "risk_domains": ["verslaving"],
        "recipient_types": ["jgz"],
        "urgency": "regular",
    }


@pytest.mark.parametrize(
    ("asked", "statuses", "open_for_jgz"),
    [
        (["jgz"], [], True),  # not delivered yet: open
        (["jgz", "wijkteam"], [D.queued, D.closed], True),  # one delivery still going
        (["jgz"], [D.closed, D.returned, D.retracted], False),  # every delivery ended
        (["wijkteam"], [], False),  # asked for another type
    ],
)
def test_one_open_melding_per_patient_and_recipient_type(
    asked: list[str], statuses: list[D], open_for_jgz: bool
) -> None:
    candidates = [OpenCandidate("m-1", asked, statuses)]
    assert open_melding_among(candidates, ["jgz"]) == ("m-1" if open_for_jgz else None)


def test_the_first_open_candidate_is_the_one_named() -> None:
    ended = OpenCandidate("m-1", ["jgz"], [D.closed])
    assert (
        open_melding_among([ended, OpenCandidate("m-2", ["jgz"], []), OpenCandidate("m-3", ["jgz"], [])], ["jgz"])
        == "m-2"
    )
