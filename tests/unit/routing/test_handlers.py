"""The routing service's use cases, driven through an in-memory unit of work (no database, no broker)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.routing.domain.model import Candidate, DeadLetter, GemeenteRecord, RoutingStatus
from services.routing.domain.route_map import RecipientRule, RouteMap
from services.routing.service_layer import commands, events
from services.routing.service_layer.routing import RouteRequest, mark_overdue, route
from shared.contracts.consent import ConsentCheckResult, ConsentScope
from shared.contracts.events import ConsentHeartbeat, ConsentWithdrawn
from shared.contracts.melding import (
    DELIVERY_OVERDUE,
    DELIVERY_STATUS_CHANGED,
    MELDING_DELIVERED,
    MELDING_NOT_DELIVERED,
    MELDING_REMINDER,
    MELDING_RETRACTED,
    MELDING_ROUTED,
    MELDING_UNROUTABLE,
    MeldingAccepted,
    MeldingCancelled,
    MeldingContent,
    Sender,
)
from shared.contracts.vocabulary import DeliveryStatus
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.messaging.consumer import IncomingEvent
from tests.samples import BSN, melding_body
from tests.unit.fakes import FakeConsentClient, principal
from tests.unit.routing.fakes import FakeDirectory, FakeRoutingUnitOfWork

CONSENT_ID = "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10"
JGZ = Candidate("87654321", "GGD Amsterdam JGZ", False)
AMSTERDAM = GemeenteRecord(code="GM0363", name="Amsterdam", source="manual", ended_at=None)


def accepted(recipient_types: list[str] | None = None) -> MeldingAccepted:
    body = melding_body(CONSENT_ID, recipient_types=recipient_types or ["jgz"])
    body.pop("consent_id")
    return MeldingAccepted(
        melding_id=str(uuid.uuid4()),
        accepted_at=datetime.now(UTC),
        sender=Sender(org_id="10000001", org_type="verloskundige", sub="m.jansen"),
        consent=ConsentScope(id=CONSENT_ID, recipient_types=["jgz", "wijkteam"], valid_until=date(2099, 1, 1)),
        content=MeldingContent.model_validate(body),
    )


def event(message: MeldingAccepted) -> IncomingEvent[MeldingAccepted]:
    return IncomingEvent(message_id=f"accepted:{message.melding_id}", type="melding.accepted", message=message)


def served() -> FakeRoutingUnitOfWork:
    directory = FakeDirectory(AMSTERDAM)
    directory.serving["jgz"] = [JGZ]
    return FakeRoutingUnitOfWork(directory)


async def test_a_melding_goes_to_the_serving_organisations_queue_with_its_delivery_audited() -> None:
    uow, melding = served(), accepted()
    await events.on_meldingen_accepted(uow, [event(melding)])
    assert not uow.outbox.of_type(MELDING_DELIVERED)  # numbered at commit: nothing before it
    await uow.commit()  # as the consumer does
    [delivery] = uow.routing.deliveries.values()
    assert (delivery.org_id, delivery.status) == (JGZ.org_id, DeliveryStatus.queued)
    [message] = uow.outbox.of_type(MELDING_DELIVERED)
    assert (message.routing_key, message.message_id) == (JGZ.org_id, delivery.delivery_id)
    assert message.body["patient"]["bsn"] == BSN and message.body["gemeente"]["code"] == "GM0363"
    assert message.body["sequence"] == 1
    [logged] = uow.routing.logged  # the log keeps the thin form: no personal data of its own
    assert (logged.sequence, logged.full, logged.body["href"]) == (1, True, f"/v1/deliveries/{delivery.delivery_id}")
    assert "patient" not in logged.body
    [routed] = uow.outbox.of_type(MELDING_ROUTED)
    assert routed.body["deliveries"][0]["delivery_id"] == delivery.delivery_id
    assert uow.routing.meldingen[melding.melding_id].status is RoutingStatus.routed
    [record] = uow.audit.records
    assert (record.action, record.resource_id, record.consent_checked) == ("deliver", delivery.delivery_id, True)


async def test_a_melding_no_one_serves_waits_and_is_announced_unroutable_once() -> None:
    uow, melding = FakeRoutingUnitOfWork(FakeDirectory(AMSTERDAM)), accepted()
    await events.on_meldingen_accepted(uow, [event(melding)])
    await events.on_meldingen_accepted(uow, [event(melding)])  # the same event again
    assert uow.routing.meldingen[melding.melding_id].status is RoutingStatus.waiting
    assert uow.routing.meldingen[melding.melding_id].unroutable_types == ("jgz",)
    assert len(uow.outbox.of_type(MELDING_UNROUTABLE)) == 1 and not uow.routing.deliveries


async def test_a_withdrawal_that_came_first_lets_nothing_out() -> None:
    uow, melding = served(), accepted()
    await uow.routing.mark_consent_withdrawn(CONSENT_ID, datetime.now(UTC))
    await events.on_meldingen_accepted(uow, [event(melding)])
    stored = uow.routing.meldingen[melding.melding_id]
    assert stored.status is RoutingStatus.withdrawn and stored.accepted is None
    assert not uow.routing.deliveries and not uow.outbox.messages


async def test_a_withdrawal_after_delivery_retracts_it_and_drops_its_personal_content() -> None:
    uow, melding = served(), accepted()
    await events.on_meldingen_accepted(uow, [event(melding)])
    withdrawn = {"consent_id": CONSENT_ID, "org_id": "10000001", "withdrawn_at": datetime.now(UTC).isoformat()}
    message = ConsentWithdrawn.model_validate(withdrawn)
    await events.on_consent_withdrawn(uow, IncomingEvent("w-1", "consent.withdrawn", message))
    await uow.commit()
    [delivery] = uow.routing.deliveries.values()
    assert delivery.status is DeliveryStatus.retracted and "patient" not in delivery.message
    [retraction] = uow.outbox.of_type(MELDING_RETRACTED)
    assert retraction.message_id == f"retract:{delivery.delivery_id}" and retraction.routing_key == JGZ.org_id
    assert retraction.body["sequence"] == 2  # after its delivery, on the same organisation's count
    assert uow.outbox.of_type(DELIVERY_STATUS_CHANGED)[-1].body["status"] == "retracted"
    assert uow.routing.meldingen[melding.melding_id].accepted is None
    assert uow.audit.records[-1].action == "retract"


async def _delivered() -> tuple[FakeRoutingUnitOfWork, str]:
    uow = served()
    await events.on_meldingen_accepted(uow, [event(accepted())])
    await uow.commit()
    [delivery_id] = uow.routing.deliveries
    return uow, delivery_id


async def report(
    uow: FakeRoutingUnitOfWork, delivery_id: str, status: DeliveryStatus, org_id: str = JGZ.org_id
) -> dict[str, Any]:
    return await commands.report_status(
        uow,
        principal=principal(org_id=org_id, org_type="jgz"),
        delivery_id=delivery_id,
        status=status,
        note=None,
        request_id=None,
    )


async def test_a_recipient_reports_forward_and_the_sender_is_told() -> None:
    uow, delivery_id = await _delivered()
    document = await report(uow, delivery_id, DeliveryStatus.received)
    assert document["status"] == "received" and document["delivery_id"] == delivery_id
    assert uow.outbox.of_type(DELIVERY_STATUS_CHANGED)[-1].body["status"] == "received"
    before = len(uow.outbox.messages)
    await report(uow, delivery_id, DeliveryStatus.received)  # the same again: 200, nothing changes
    assert len(uow.outbox.messages) == before
    with pytest.raises(Conflict):
        await report(uow, delivery_id, DeliveryStatus.queued)


async def test_another_organisations_delivery_is_not_found_and_the_probe_is_audited() -> None:
    uow, delivery_id = await _delivered()
    with pytest.raises(NotFound):
        await report(uow, delivery_id, DeliveryStatus.received, org_id="11111111")
    assert uow.audit.records[-1].refused and uow.audit.records[-1].outcome == "not-found"
    assert uow.routing.deliveries[delivery_id].status is DeliveryStatus.queued


async def test_a_dead_letter_is_replayed_once_under_its_own_message_id() -> None:
    uow = FakeRoutingUnitOfWork()
    letter = DeadLetter(
        id="l-1",
        queue="kansrijk.melding.events",
        message_id="accepted:m-1",
        message_type="melding.routed",
        body="{}",
        body_encoding="utf-8",
        correlation_id=None,
        reason="delivery_limit",
        died_at=datetime.now(UTC),
    )
    uow.routing.letters[letter.id] = letter
    for _ in range(2):
        replayed = await commands.replay_dead_letter(uow, dead_letter_id="l-1", request_id=None)
        assert replayed.replayed_at is not None
    [message] = uow.outbox.messages
    assert (message.exchange, message.routing_key, message.message_id) == ("", letter.queue, "accepted:m-1")


SOCIAL_ONLY = RouteMap(
    date(2026, 1, 1),
    {"jgz": RecipientRule(), "wijkteam": RecipientRule(frozenset({"financien-schulden", "huisvesting"}), note=False)},
)
WIJKTEAM = Candidate("wijkteam-centrum", "Buurtteam Centrum", False)


def coalition() -> FakeRoutingUnitOfWork:
    uow = served()
    uow.directory.serving["wijkteam"] = [WIJKTEAM]
    uow.directory.route_maps.append(SOCIAL_ONLY)
    return uow


async def test_the_route_map_gives_each_recipient_only_its_share_in_message_and_stored_copy() -> None:
    uow, melding = coalition(), accepted(["jgz", "wijkteam"])  # verslaving + financien-schulden, with a note
    await events.on_meldingen_accepted(uow, [event(melding)])
    await uow.commit()
    messages = {m.routing_key: m.body for m in uow.outbox.of_type(MELDING_DELIVERED)}
    assert messages[JGZ.org_id]["sequence"] == messages[WIJKTEAM.org_id]["sequence"] == 1  # each its own count
    assert messages[JGZ.org_id]["risk_domains"] == ["verslaving", "financien-schulden"]
    assert messages[JGZ.org_id]["note"] == melding.content.note
    assert messages[WIJKTEAM.org_id]["risk_domains"] == ["financien-schulden"]
    assert messages[WIJKTEAM.org_id]["note"] is None
    stored = {d.org_id: d for d in uow.routing.deliveries.values()}
    # It never held what it may not see: the stored copy is the message (less the queue's number).
    assert {**stored[WIJKTEAM.org_id].message, "sequence": 1} == messages[WIJKTEAM.org_id]
    assert stored[WIJKTEAM.org_id].contact_due_at is not None
    [routed] = uow.outbox.of_type(MELDING_ROUTED)
    assert {d["recipient_type"]: d["risk_domains"] for d in routed.body["deliveries"]} == {
        "jgz": ["verslaving", "financien-schulden"],
        "wijkteam": ["financien-schulden"],
    }


async def test_a_type_the_route_map_excludes_is_skipped_and_the_other_delivered() -> None:
    uow = coalition()
    melding = accepted(["jgz", "wijkteam"])
    melding.content.risk_domains = ["verslaving"]
    await events.on_meldingen_accepted(uow, [event(melding)])
    assert [d.recipient_type for d in uow.routing.deliveries.values()] == ["jgz"]
    [routed] = uow.outbox.of_type(MELDING_ROUTED)
    assert routed.body["skipped_types"] == [{"recipient_type": "wijkteam", "reason": "route-map"}]
    assert uow.routing.meldingen[melding.melding_id].status is RoutingStatus.routed


async def test_every_type_skipped_is_not_delivered_and_the_sender_is_told() -> None:
    uow = coalition()
    melding = accepted(["wijkteam"])
    melding.content.risk_domains = ["psychiatrie"]
    await events.on_meldingen_accepted(uow, [event(melding)])
    stored = uow.routing.meldingen[melding.melding_id]
    assert stored.status is RoutingStatus.not_delivered and stored.accepted is None  # nothing left to send
    [told] = uow.outbox.of_type(MELDING_NOT_DELIVERED)
    assert told.body["reason"] == "route-map" and told.body["skipped_types"][0]["recipient_type"] == "wijkteam"
    assert not uow.routing.deliveries


async def test_a_consent_expired_before_routing_is_not_delivered_and_audited() -> None:
    uow, melding = served(), accepted()
    melding.consent.valid_until = date(2020, 1, 1)
    await events.on_meldingen_accepted(uow, [event(melding)])
    [told] = uow.outbox.of_type(MELDING_NOT_DELIVERED)
    assert told.body["reason"] == "consent-expired" and not uow.routing.deliveries
    assert uow.audit.records[-1].outcome == "refused:expired"


async def report_answer(
    uow: FakeRoutingUnitOfWork,
    delivery_id: str,
    status: DeliveryStatus,
    *,
    contact_at: date | None = None,
    outcome: str | None = None,
    returned_reason: str | None = None,
) -> dict[str, Any]:
    return await commands.report_status(
        uow,
        principal=principal(org_id=JGZ.org_id, org_type="jgz"),
        delivery_id=delivery_id,
        status=status,
        note=None,
        request_id=None,
        contact_at=contact_at,
        outcome=outcome,
        returned_reason=returned_reason,
    )


async def test_contact_made_carries_its_day_and_closed_its_outcome() -> None:
    uow, delivery_id = await _delivered()
    await report_answer(uow, delivery_id, DeliveryStatus.contact_made)
    assert uow.routing.deliveries[delivery_id].contact_at is not None  # default: today
    with pytest.raises(ValidationFailed):
        await report_answer(uow, delivery_id, DeliveryStatus.closed, contact_at=date(2026, 1, 1))
    await report_answer(uow, delivery_id, DeliveryStatus.closed)
    assert uow.routing.deliveries[delivery_id].outcome == "not-reported"
    told = uow.outbox.of_type(DELIVERY_STATUS_CHANGED)[-1].body
    assert (told["status"], told["outcome"]) == ("closed", "not-reported")
    # `closed` carries the day of contact as well: the melding service may handle it before `contact_made`,
    # which it then ignores as older, and the sender (and the programme's figures) would lose the day.
    assert told["contact_at"] == str(uow.routing.deliveries[delivery_id].contact_at)


async def test_contact_cannot_be_made_in_the_future_nor_before_the_delivery() -> None:
    uow, delivery_id = await _delivered()
    for day in (date(2099, 1, 1), date(2020, 1, 1)):
        with pytest.raises(ValidationFailed):
            await report_answer(uow, delivery_id, DeliveryStatus.contact_made, contact_at=day)


async def test_a_returned_melding_waits_for_an_operator_and_never_goes_back_to_who_returned_it() -> None:
    uow, delivery_id = await _delivered()
    melding_id = uow.routing.deliveries[delivery_id].melding_id
    with pytest.raises(ValidationFailed):  # a return needs its reason
        await report_answer(uow, delivery_id, DeliveryStatus.returned)
    await report_answer(uow, delivery_id, DeliveryStatus.returned, returned_reason="wrong-recipient")
    melding = uow.routing.meldingen[melding_id]
    assert melding.status is RoutingStatus.waiting and melding.never_again() == {"jgz": {JGZ.org_id}}
    # the automatic reroute leaves it to the operator
    assert not await events.has_new_recipient(uow, melding)
    with pytest.raises(Conflict):  # returned is final for its recipient
        await report_answer(uow, delivery_id, DeliveryStatus.received)
    # The operator routes it again by the directory: JGZ is the only candidate and returned it, so it waits.
    other = Candidate("44444444", "JGZ Zuid", False)
    async with uow:
        [routed] = await route(uow, [RouteRequest(melding_id, chosen={})])
    assert routed.status is RoutingStatus.waiting
    uow.directory.serving["jgz"].append(other)
    async with uow:
        [routed] = await route(uow, [RouteRequest(melding_id, chosen={})])
    assert routed.status is RoutingStatus.routed
    live = [d for d in uow.routing.deliveries.values() if d.status is not DeliveryStatus.returned]
    assert [d.org_id for d in live] == [other.org_id]


async def test_a_delivery_past_its_deadline_is_reminded_once() -> None:
    uow, delivery_id = await _delivered()
    due = uow.routing.deliveries[delivery_id].contact_due_at
    assert due is not None
    assert await mark_overdue(uow, due - timedelta(seconds=1)) == 0  # not yet
    assert await mark_overdue(uow, due + timedelta(seconds=1)) == 1
    assert await mark_overdue(uow, due + timedelta(seconds=2)) == 0
    await uow.commit()
    [reminder] = uow.outbox.of_type(MELDING_REMINDER)
    assert (reminder.message_id, reminder.routing_key) == (f"reminder-{delivery_id}", JGZ.org_id)
    assert len(uow.outbox.of_type(DELIVERY_OVERDUE)) == 1


async def test_a_cancellation_retracts_with_its_reason_and_one_that_came_first_lets_nothing_out() -> None:
    uow, delivery_id = await _delivered()
    melding_id = uow.routing.deliveries[delivery_id].melding_id
    cancelled = {
        "melding_id": melding_id,
        "consent_id": CONSENT_ID,
        "reason": "pregnancy-ended",
        "cancelled_at": datetime.now(UTC).isoformat(),
    }
    message = MeldingCancelled.model_validate(cancelled)
    await events.on_melding_cancelled(uow, IncomingEvent("c-1", "melding.cancelled", message))
    await uow.commit()
    [retraction] = uow.outbox.of_type(MELDING_RETRACTED)
    assert (retraction.body["reason"], retraction.body["cancel_reason"]) == ("cancelled-by-sender", "pregnancy-ended")
    assert uow.routing.meldingen[melding_id].status is RoutingStatus.cancelled

    early, melding = served(), accepted()
    first = {**cancelled, "melding_id": melding.melding_id}
    message = MeldingCancelled.model_validate(first)
    await events.on_melding_cancelled(early, IncomingEvent("c-2", "melding.cancelled", message))
    await events.on_meldingen_accepted(early, [event(melding)])
    await early.commit()
    assert early.routing.meldingen[melding.melding_id].status is RoutingStatus.cancelled
    assert not early.routing.deliveries and not early.outbox.of_type(MELDING_DELIVERED)


async def test_a_thin_organisations_queue_carries_no_personal_data_and_the_rest_keep_the_full_melding() -> None:
    uow, melding = coalition(), accepted(["jgz", "wijkteam"])
    uow.directory.serving["wijkteam"] = [replace(WIJKTEAM, delivery_mode="thin")]
    await events.on_meldingen_accepted(uow, [event(melding)])
    await uow.commit()
    messages = {m.routing_key: m.body for m in uow.outbox.of_type(MELDING_DELIVERED)}
    thin, full = messages[WIJKTEAM.org_id], messages[JGZ.org_id]
    assert set(thin) == {
        "delivery_id", "melding_id", "sent_at", "recipient", "gemeente_code", "urgency", "href", "sequence"
    }  # fmt: skip
    assert thin["href"] == f"/v1/deliveries/{thin['delivery_id']}" and thin["gemeente_code"] == "GM0363"
    assert BSN not in str(thin) and full["patient"]["bsn"] == BSN
    # The content is there to fetch with the organisation's token: routing keeps it as for any delivery.
    assert uow.routing.deliveries[thin["delivery_id"]].message["patient"]["bsn"] == BSN
    assert {(m.org_id, m.full) for m in uow.routing.logged} == {(JGZ.org_id, True), (WIJKTEAM.org_id, False)}


async def test_messages_of_one_commit_are_numbered_in_the_order_they_were_staged_after_the_organisations_last() -> None:
    uow = served()
    for _ in range(3):
        await events.on_meldingen_accepted(uow, [event(accepted())])
    assert not uow.routing.logged
    await uow.commit()
    staged = [m.message_id for m in uow.outbox.of_type(MELDING_DELIVERED)]
    assert [m.body["sequence"] for m in uow.outbox.of_type(MELDING_DELIVERED)] == [1, 2, 3]
    assert [m.message_id for m in uow.routing.logged] == staged
    await events.on_meldingen_accepted(uow, [event(accepted())])
    await uow.commit()
    assert uow.outbox.of_type(MELDING_DELIVERED)[-1].body["sequence"] == 4


def withdrawal(message_id: str = "w-1") -> IncomingEvent[ConsentWithdrawn]:
    withdrawn = {"consent_id": CONSENT_ID, "org_id": "10000001", "withdrawn_at": datetime.now(UTC).isoformat()}
    return IncomingEvent(message_id, "consent.withdrawn", ConsentWithdrawn.model_validate(withdrawn))


async def test_stopping_a_melding_retracts_its_live_delivery_and_leaves_the_returned_one_returned_and_empty() -> None:
    uow, delivery_id = await _delivered()
    melding_id = uow.routing.deliveries[delivery_id].melding_id
    assert (await report(uow, delivery_id, DeliveryStatus.received))["status"] == "received"
    await report_answer(uow, delivery_id, DeliveryStatus.returned, returned_reason="no-capacity")
    other = Candidate("87654322", "GGD Amstelland JGZ", False)
    async with uow:
        await route(uow, [RouteRequest(melding_id, chosen={"jgz": other})])
        await uow.commit()
    [second] = [d for d in uow.routing.deliveries if d != delivery_id]

    await events.on_consent_withdrawn(uow, withdrawal())
    await uow.commit()
    first, again = uow.routing.deliveries[delivery_id], uow.routing.deliveries[second]
    assert (first.status, again.status) == (DeliveryStatus.returned, DeliveryStatus.retracted)
    assert "patient" not in first.message and "patient" not in again.message
    assert [m.routing_key for m in uow.outbox.of_type(MELDING_RETRACTED)] == [other.org_id]
    assert uow.routing.meldingen[melding_id].status is RoutingStatus.withdrawn


async def test_a_melding_that_cannot_be_stopped_does_not_hold_up_the_others_of_a_withdrawal_and_is_kept_to_replay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uow = served()
    first, second = accepted(), accepted()
    for melding in (first, second):
        await events.on_meldingen_accepted(uow, [event(melding)])
    await uow.commit()
    by_melding = {d.melding_id: d.delivery_id for d in uow.routing.deliveries.values()}
    retract = uow.routing.retract_delivery

    async def fails_for_the_first(delivery_id: str, retraction: dict[str, Any], at: datetime) -> None:
        await retract(delivery_id, retraction, at)  # written, then the defect: all of it must be undone
        if delivery_id == by_melding[first.melding_id]:
            raise RuntimeError("a defect")

    monkeypatch.setattr(uow.routing, "retract_delivery", fails_for_the_first)
    await events.on_consent_withdrawn(uow, withdrawal())
    await uow.commit()

    stuck, stopped = uow.routing.meldingen[first.melding_id], uow.routing.meldingen[second.melding_id]
    assert stopped.status is RoutingStatus.withdrawn and stopped.accepted is None
    assert uow.routing.deliveries[by_melding[second.melding_id]].status is DeliveryStatus.retracted
    assert stuck.status is RoutingStatus.routed and stuck.accepted is not None  # untouched, not half-stopped
    assert uow.routing.deliveries[by_melding[first.melding_id]].status is DeliveryStatus.queued
    assert [m.body["delivery_id"] for m in uow.outbox.of_type(MELDING_RETRACTED)] == [by_melding[second.melding_id]]
    [letter] = uow.routing.letters.values()
    assert (letter.queue, letter.message_type) == ("kansrijk.routing.withdrawals", "consent.withdrawn")
    assert letter.message_id != "w-1" and BSN not in letter.body  # its own id: the event itself was processed

    monkeypatch.setattr(uow.routing, "retract_delivery", retract)  # the defect fixed, an operator replays it
    await events.on_consent_withdrawn(uow, withdrawal(letter.message_id or ""))
    await uow.commit()
    assert uow.routing.meldingen[first.melding_id].status is RoutingStatus.withdrawn
    assert {d.status for d in uow.routing.deliveries.values()} == {DeliveryStatus.retracted}
    assert len(uow.outbox.of_type(MELDING_RETRACTED)) == 2  # the one stopped before is not retracted again


# --- the consent re-check before routing: only while routing may be behind on withdrawals -----------------


@pytest.mark.parametrize(
    ("waited", "feed_current", "asked"),
    [
        (timedelta(seconds=1), False, False),  # checked at intake a moment ago
        (timedelta(minutes=5), True, False),  # a backlog, but every withdrawal published has been applied
        (timedelta(minutes=5), False, True),  # a backlog, and routing cut off from the withdrawals: ask again
    ],
)
async def test_a_melding_is_checked_again_only_when_a_withdrawal_may_be_on_its_way(
    waited: timedelta, feed_current: bool, asked: bool
) -> None:
    client = FakeConsentClient(ConsentCheckResult(allowed=True))
    message = accepted().model_copy(update={"accepted_at": datetime.now(UTC) - waited})

    async def current() -> bool:
        return feed_current

    answer = await events.prepare_accepted(
        client, event(message), recheck_after=timedelta(seconds=30), feed_is_current=current
    )
    assert client.checks == int(asked) and (answer is not None) is asked


async def test_routing_hears_the_consent_feed_in_batches_and_never_backwards() -> None:
    uow = FakeRoutingUnitOfWork()
    at = datetime.now(UTC)
    beats = [
        IncomingEvent(f"hb-{n}", "consent.heartbeat", ConsentHeartbeat(at=at - timedelta(seconds=n))) for n in (3, 0, 1)
    ]
    await events.on_consent_heartbeats(uow, beats)
    await events.on_consent_heartbeats(uow, beats[:1])
    assert uow.routing.heard_at == at
