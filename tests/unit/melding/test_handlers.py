"""The melding service's use cases, driven through an in-memory unit of work (no database, no broker)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.melding.domain.model import MeldingStatus
from services.melding.service_layer import handlers
from services.melding.service_layer.intake import CONSENT_REFUSALS, Intake, Sent
from shared.contracts.consent import ConsentCheckResult, ConsentScope
from shared.contracts.melding import MELDING_ACCEPTED, STORED, MeldingContent
from shared.contracts.subscriptions import EVENT_CONTRACTS
from shared.contracts.vocabulary import CheckReason
from shared.errors import ConsentRequired, NotFound, RepeatedMelding
from shared.messaging.consumer import IncomingEvent
from tests.samples import BSN, melding_body
from tests.unit.fakes import FakeConsentClient, principal
from tests.unit.melding.fakes import FakeMeldingUnitOfWork

CONSENT_ID = "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10"
ALLOWED = ConsentCheckResult(
    allowed=True,
    consent=ConsentScope(id=CONSENT_ID, recipient_types=["jgz", "wijkteam"], valid_until=date(2027, 12, 31)),
)


def content() -> MeldingContent:
    body = melding_body(CONSENT_ID)
    body.pop("consent_id")
    return MeldingContent.model_validate(body)


async def send(
    uow: FakeMeldingUnitOfWork,
    client: FakeConsentClient,
    key: str | None = None,
    consent_max_lag: timedelta = timedelta(0),  # 0: the record is never current, the consent service is asked
) -> Sent:
    return await handlers.send_melding(
        Intake(uow),
        client,
        principal=principal(),
        consent_id=CONSENT_ID,
        content=content(),
        idempotency_key=key,
        request_fingerprint="fingerprint",
        request_id=None,
        consent_max_lag=consent_max_lag,
    )


def event(message_type: str, body: dict[str, Any]) -> IncomingEvent[Any]:
    """As the consumer hands it over: the body decoded into its type's contract."""
    message = EVENT_CONTRACTS[message_type].model_validate(body, context=STORED)
    return IncomingEvent(message_id=f"{message_type}-1", type=message_type, message=message)


async def test_an_allowed_melding_is_stored_announced_and_audited_in_one_commit() -> None:
    uow = FakeMeldingUnitOfWork()
    sent = await send(uow, FakeConsentClient(ALLOWED))
    melding_id = sent.melding.record.id
    assert sent.melding.record.status is MeldingStatus.accepted
    assert [h.event for h in sent.melding.history] == ["accepted"]
    [message] = uow.outbox.of_type(MELDING_ACCEPTED)
    assert message.message_id == f"accepted:{melding_id}" and message.body["consent"]["id"] == CONSENT_ID
    [record] = uow.audit.records
    assert (record.action, record.resource_id, record.patient_bsn, record.consent_checked) == (
        "create",
        melding_id,
        BSN,
        True,
    )
    assert uow.commits == 1


@pytest.mark.parametrize("reason", list(CheckReason))
async def test_a_refused_melding_stores_nothing_and_the_refusal_is_audited(reason: CheckReason) -> None:
    uow = FakeMeldingUnitOfWork()
    with pytest.raises(ConsentRequired) as refused:
        await send(uow, FakeConsentClient(ConsentCheckResult(allowed=False, reason=reason)))
    # Another organisation's consent reads as a missing one: its existence is not revealed.
    if reason is CheckReason.other_organisation:
        assert str(refused.value) == CONSENT_REFUSALS["not-found"]
    assert not uow.meldingen.records and not uow.outbox.messages and uow.commits == 0
    [record] = uow.audit.records
    assert record.refused and record.outcome == f"refused:{reason.value}" and record.consent_checked is False


async def test_a_withdrawal_that_arrived_after_the_check_refuses_the_melding() -> None:
    uow = FakeMeldingUnitOfWork()
    await uow.meldingen.record_withdrawal(CONSENT_ID, datetime.now(UTC))
    with pytest.raises(ConsentRequired, match="withdrawn"):
        await send(uow, FakeConsentClient(ALLOWED))
    assert not uow.meldingen.records and not uow.outbox.messages


async def test_a_retry_with_the_same_key_gets_the_first_answer_without_a_second_check() -> None:
    uow, client = FakeMeldingUnitOfWork(), FakeConsentClient(ALLOWED)
    first = await send(uow, client, key="k-1")
    again = await send(uow, client, key="k-1")
    assert again.melding.record.id == first.melding.record.id
    assert client.checks == 1 and len(uow.meldingen.records) == 1 and len(uow.outbox.messages) == 1


async def test_another_organisations_melding_is_not_found_and_the_probe_is_audited() -> None:
    uow = FakeMeldingUnitOfWork()
    sent = await send(uow, FakeConsentClient(ALLOWED))
    with pytest.raises(NotFound):
        await handlers.get_melding(
            uow,
            principal=principal(org_id="20000002"),
            melding_id=sent.melding.record.id,
            request_id=None,
        )
    assert uow.audit.records[-1].refused and uow.audit.records[-1].outcome == "not-found"


def _delivery(delivery_id: str = "d-1", recipient_type: str = "jgz") -> dict[str, str]:
    return {"delivery_id": delivery_id, "org_id": "87654321", "org_name": "GGD JGZ", "recipient_type": recipient_type}


async def test_routing_then_reports_move_the_melding_and_its_delivery_forward_only() -> None:
    uow = FakeMeldingUnitOfWork()
    melding_id = (await send(uow, FakeConsentClient(ALLOWED))).melding.record.id
    routed = {"melding_id": melding_id, "gemeente": None, "deliveries": [_delivery()], "unroutable_types": []}
    await handlers.on_meldingen_routed(uow, [event("melding.routed", routed)])
    assert uow.meldingen.states[melding_id].status is MeldingStatus.delivered
    at = datetime.now(UTC)
    for status, when in (("closed", at), ("received", at - timedelta(minutes=1))):  # out of order
        changed = {"melding_id": melding_id, "delivery": _delivery(), "status": status, "at": when.isoformat()}
        await handlers.on_delivery_statuses_changed(uow, [event("delivery.status_changed", changed)])
    [delivery] = uow.meldingen.delivery_rows[melding_id].values()
    assert delivery.status.value == "closed"
    events = [h.event for h in uow.meldingen.history_rows[melding_id]]
    assert events == ["accepted", "routed", "delivery_closed"]  # the late `received` changed nothing


async def test_each_transaction_that_changes_a_melding_says_so_once_with_ids_only() -> None:
    """`melding.changed` (for the FHIR facade's subscriptions): one per melding and transaction, staged at
    the commit, naming the melding, its sender and its status — no personal data."""
    uow = FakeMeldingUnitOfWork()
    melding_id = (await send(uow, FakeConsentClient(ALLOWED))).melding.record.id
    staged = len(uow.outbox.messages)
    routed = {"melding_id": melding_id, "gemeente": None, "deliveries": [_delivery()], "unroutable_types": []}
    await handlers.on_meldingen_routed(uow, [event("melding.routed", routed)])
    changed = {
        "melding_id": melding_id,
        "delivery": _delivery(),
        "status": "received",
        "at": datetime.now(UTC).isoformat(),
    }
    await handlers.on_delivery_statuses_changed(uow, [event("delivery.status_changed", changed)])
    await uow.commit()  # both in one transaction: one event
    said = [m for m in uow.outbox.messages[staged:] if m.message_type == "melding.changed"]
    assert [(m.body["melding_id"], m.body["sender_org_id"], m.body["status"]) for m in said] == [
        (melding_id, "10000001", "delivered")
    ]
    assert set(said[0].body) == {"melding_id", "sender_org_id", "status", "at"}
    await uow.commit()  # nothing changed since: nothing more said
    assert len([m for m in uow.outbox.messages if m.message_type == "melding.changed"]) == 1


async def test_unroutable_until_a_delivery_is_made() -> None:
    uow = FakeMeldingUnitOfWork()
    melding_id = (await send(uow, FakeConsentClient(ALLOWED))).melding.record.id
    waiting = {"melding_id": melding_id, "gemeente": None, "unroutable_types": ["jgz", "wijkteam"]}
    await handlers.on_melding_unroutable(uow, event("melding.unroutable", waiting))
    assert uow.meldingen.states[melding_id].status is MeldingStatus.unroutable
    routed = {"melding_id": melding_id, "gemeente": None, "deliveries": [_delivery()], "unroutable_types": ["wijkteam"]}
    await handlers.on_meldingen_routed(uow, [event("melding.routed", routed)])
    assert uow.meldingen.states[melding_id].status is MeldingStatus.delivered
    assert uow.meldingen.records[melding_id].unroutable_types == ("wijkteam",)


async def test_a_withdrawal_withdraws_the_meldingen_and_removes_their_personal_data_at_once() -> None:
    uow = FakeMeldingUnitOfWork()
    melding_id = (await send(uow, FakeConsentClient(ALLOWED))).melding.record.id
    withdrawn = {"consent_id": CONSENT_ID, "org_id": "10000001", "withdrawn_at": datetime.now(UTC).isoformat()}
    await handlers.on_consent_withdrawn(uow, event("consent.withdrawn", withdrawn))
    record = uow.meldingen.records[melding_id]
    assert uow.meldingen.states[melding_id].status is MeldingStatus.withdrawn
    assert record.content is None and record.purged_at is not None
    assert record.skeleton is not None and "patient" not in record.skeleton and record.skeleton["risk_domains"]
    purge = uow.audit.records[-1]
    assert (purge.action, purge.outcome, purge.patient_bsn) == ("update", "purged:consent-withdrawn", BSN)
    # A repeated event finds nothing left to withdraw or purge.
    await handlers.on_consent_withdrawn(uow, event("consent.withdrawn", withdrawn))
    assert [h.event for h in uow.meldingen.history_rows[melding_id]].count("purged") == 1


async def test_a_melding_routing_sends_to_no_one_is_not_delivered_with_its_reason() -> None:
    uow = FakeMeldingUnitOfWork()
    melding_id = (await send(uow, FakeConsentClient(ALLOWED))).melding.record.id
    skipped = [{"recipient_type": t, "reason": "route-map"} for t in ("jgz", "wijkteam")]
    told = {"melding_id": melding_id, "gemeente": None, "reason": "route-map", "skipped_types": skipped}
    await handlers.on_melding_not_delivered(uow, event("melding.not_delivered", told))
    view = await handlers.get_melding(uow, principal=principal(), melding_id=melding_id, request_id=None)
    assert (view.status, view.not_delivered_reason) == ("not_delivered", "route-map")
    assert [vars(s) for s in view.skipped_types] == skipped and view.history[-1].event == "not_delivered"


async def test_each_delivery_shows_its_share_of_the_risk_domains() -> None:
    uow = FakeMeldingUnitOfWork()
    melding_id = (await send(uow, FakeConsentClient(ALLOWED))).melding.record.id
    share = {**_delivery("d-2", "wijkteam"), "risk_domains": ["financien-schulden"]}
    routed = {
        "melding_id": melding_id,
        "gemeente": None,
        "deliveries": [share],
        "unroutable_types": [],
        "skipped_types": [],
    }
    await handlers.on_meldingen_routed(uow, [event("melding.routed", routed)])
    view = await handlers.get_melding(uow, principal=principal(), melding_id=melding_id, request_id=None)
    assert view.deliveries[0].risk_domains == ("financien-schulden",)


async def test_a_second_open_melding_for_the_same_patient_and_type_is_a_conflict_until_the_first_ends() -> None:
    uow, client = FakeMeldingUnitOfWork(), FakeConsentClient(ALLOWED)
    first = (await send(uow, client, key="k-1")).melding.record.id
    with pytest.raises(RepeatedMelding) as repeated:
        await send(uow, client, key="k-2")
    assert repeated.value.existing == f"/v1/meldingen/{first}" and len(uow.meldingen.records) == 1
    assert uow.audit.records[-1].outcome == "refused:repeated"
    await handlers.cancel_melding(uow, principal=principal(), melding_id=first, reason="sent-in-error", request_id=None)
    assert (await send(uow, client, key="k-3")).melding.record.id != first


async def test_a_cancellation_removes_personal_data_and_tells_routing_once() -> None:
    uow = FakeMeldingUnitOfWork()
    melding_id = (await send(uow, FakeConsentClient(ALLOWED))).melding.record.id
    for _ in range(2):
        view = await handlers.cancel_melding(
            uow,
            principal=principal(),
            melding_id=melding_id,
            reason="pregnancy-ended",
            request_id=None,
        )
    assert view.status == "cancelled" and view.patient is None and view.note is None
    assert len(uow.outbox.of_type("melding.cancelled")) == 1
    with pytest.raises(NotFound):
        await handlers.cancel_melding(
            uow,
            principal=principal(org_id="20000002"),
            melding_id=melding_id,
            reason="other",
            request_id=None,
        )
