"""Use cases of the melding service: intake, the sender's reads, and the events that keep its view current."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError

from services.melding.adapters.orm import audit, idempotency_keys, outbox
from services.melding.adapters.repository import MeldingRepository
from services.melding.domain.model import DeliveryView
from shared import idempotency
from shared.audit import record_access, record_refusal
from shared.auth import PLATFORM, Principal
from shared.clients.consent import ConsentClient
from shared.clock import now
from shared.contracts.events import ConsentWithdrawn
from shared.contracts.melding import (
    MELDING_ACCEPTED,
    ConsentRef,
    DeliveryStatusChanged,
    MeldingAccepted,
    MeldingContent,
    MeldingRouted,
    MeldingUnroutable,
    Sender,
)
from shared.db import Database, UnitOfWork
from shared.errors import ConsentRequired, NotFound
from shared.messaging.consumer import IncomingEvent
from shared.messaging.outbox import add_message
from shared.messaging.topology import EVENTS_EXCHANGE
from shared.pagination import encode_cursor

SERVICE = "melding"

CONSENT_REFUSALS = {
    "not-found": "no consent with this id",
    # Another organisation's consent is answered exactly like a missing one: its existence is not revealed.
    "other-organisation": "no consent with this id",
    "other-patient": "the consent is for another patient",
    "withdrawn": "the consent has been withdrawn",
    "expired": "the consent has expired",
    "out-of-scope": "the consent does not cover every requested recipient type",
}


@dataclass(frozen=True)
class Sent:
    melding: dict[str, Any]
    replayed: bool


def _audit(
    uow: UnitOfWork,
    principal: Principal,
    action: str,
    melding_id: str | None,
    bsn: str | None,
    request_id: str | None,
    outcome: str = "success",
    consent_checked: bool | None = None,
) -> None:
    record_access(
        uow,
        audit,
        service=SERVICE,
        principal=principal,
        action=action,
        resource_type="melding",
        resource_id=melding_id,
        patient_bsn=bsn,
        request_id=request_id,
        outcome=outcome,
        consent_checked=consent_checked,
    )


async def send_melding(
    database: Database,
    consent_client: ConsentClient,
    *,
    principal: Principal,
    consent_id: str,
    content: MeldingContent,
    idempotency_key: str | None,
    request_fingerprint: str,
    request_id: str | None,
) -> Sent:
    """Check consent, then store the melding and its `melding.accepted` event in one transaction."""
    if (
        idempotency_key is not None
        and (replay := await _replay(database, principal, idempotency_key, request_fingerprint)) is not None
    ):
        return replay

    # Over HTTP, outside any transaction: a slow consent service holds no database lock.
    answer = await consent_client.check(
        consent_id=consent_id,
        bsn=content.patient.bsn,
        org_id=principal.org_id,
        recipient_types=list(content.recipient_types),
        request_id=request_id,
    )
    if not answer.allowed or answer.consent is None:
        await _refuse(database, principal, content, request_id, reason=answer.reason or "refused")

    consent = ConsentRef.model_validate(answer.consent.model_dump())
    try:
        sent = await _store(
            database,
            principal=principal,
            consent=consent,
            content=content,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
            request_id=request_id,
        )
    except IntegrityError:
        if idempotency_key is None:
            raise
        # A concurrent retry with the same key won: answer as it did.
        replay = await _replay(database, principal, idempotency_key, request_fingerprint)
        assert replay is not None
        return replay
    if sent is None:
        await _refuse(database, principal, content, request_id, reason="withdrawn")
    return sent


async def _replay(database: Database, principal: Principal, key: str, request_fingerprint: str) -> Sent | None:
    """The first answer to this Idempotency-Key (409 for another body), or None if the key is new."""
    async with database.unit_of_work() as uow:
        previous = await idempotency.find_previous(
            uow, idempotency_keys, org_id=principal.org_id, key=key, request_fingerprint=request_fingerprint
        )
        return None if previous is None else Sent(await _read(uow, previous.resource_id), replayed=True)


async def _store(
    database: Database,
    *,
    principal: Principal,
    consent: ConsentRef,
    content: MeldingContent,
    idempotency_key: str | None,
    request_fingerprint: str,
    request_id: str | None,
) -> Sent | None:
    """The melding, its `melding.accepted` event and its audit record in one transaction; None (nothing
    stored) if the consent's withdrawal reached this service since the consent service said yes."""
    melding_id = str(uuid.uuid4())
    accepted_at = now()
    sender = Sender(org_id=principal.org_id, org_type=principal.org_type, sub=principal.sub)
    async with database.unit_of_work() as uow:
        repository = MeldingRepository(uow)
        # Intake and the consent's withdrawal take one lock in turn: either the withdrawal came first and
        # refuses this melding here, or it comes after and finds the melding committed, and withdraws it.
        if (await repository.lock_consent(consent.id)).withdrawn_at is not None:
            return None
        if idempotency_key is not None:
            await idempotency.remember(
                uow,
                idempotency_keys,
                org_id=principal.org_id,
                key=idempotency_key,
                request_fingerprint=request_fingerprint,
                status_code=202,
                resource_id=melding_id,
            )
        row, accepted = await repository.add(
            melding_id=melding_id,
            sender=sender.model_dump(),
            consent=consent.model_dump(mode="json"),
            content=content.model_dump(mode="json"),
            at=accepted_at,
        )
        event = MeldingAccepted(
            melding_id=melding_id, accepted_at=accepted_at, sender=sender, consent=consent, content=content
        )
        await add_message(
            uow,
            outbox,
            exchange=EVENTS_EXCHANGE,
            routing_key=MELDING_ACCEPTED,
            message_type=MELDING_ACCEPTED,
            body=event,
            correlation_id=melding_id,
            request_id=request_id,
            message_id=f"accepted:{melding_id}",
        )
        _audit(uow, principal, "create", melding_id, content.patient.bsn, request_id, consent_checked=True)
        await uow.commit()
    # As a read right after the commit shows it, without reading back what was just written.
    return Sent(_view(row, [], [accepted]), replayed=False)


async def _refuse(
    database: Database, principal: Principal, content: MeldingContent, request_id: str | None, *, reason: str
) -> NoReturn:
    """Audit a melding refused for its consent (nothing of it is stored), then raise 403 consent-required."""
    async with database.unit_of_work() as uow:
        _audit(
            uow,
            principal,
            "create",
            None,
            content.patient.bsn,
            request_id,
            outcome=f"refused:{reason}",
            consent_checked=False,
        )
        await uow.commit()
    raise ConsentRequired(CONSENT_REFUSALS.get(reason, "the consent does not allow this melding"))


def _bsn_of(view: dict[str, Any]) -> str | None:
    return (view.get("patient") or {}).get("bsn")


def _view(row: Any, deliveries: list[Any], history: list[Any]) -> dict[str, Any]:
    # Once purged (retention), only the anonymous skeleton is left: no patient, contact or note.
    content = json.loads(row.content) if row.content is not None else json.loads(row.skeleton or "{}")
    return {
        "id": row.id,
        "status": row.status,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "consent_id": row.consent_id,
        "patient": None,
        "note": None,
        "contact": None,
        **content,
        "purged_at": row.purged_at,
        "sender": {"org_id": row.sender_org_id, "org_type": row.sender_org_type, "sub": row.sender_sub},
        "gemeente": {"code": row.gemeente_code, "name": row.gemeente_name} if row.gemeente_code else None,
        "unroutable_types": [t for t in row.unroutable_types.split(",") if t],
        "deliveries": [
            {
                "delivery_id": d.delivery_id,
                "org_id": d.org_id,
                "org_name": d.org_name,
                "recipient_type": d.recipient_type,
                "status": d.status,
                "updated_at": d.updated_at,
            }
            for d in deliveries
        ],
        "history": [{"at": h.at, "event": h.event, "detail": h.detail} for h in history],
    }


async def _read(uow: UnitOfWork, melding_id: str) -> dict[str, Any]:
    repository = MeldingRepository(uow)
    row = await repository.get(melding_id)
    assert row is not None
    deliveries = await repository.deliveries([melding_id])
    history = await repository.history([melding_id])
    return _view(row, deliveries[melding_id], history[melding_id])


async def get_melding(
    database: Database, *, principal: Principal, melding_id: str, request_id: str | None
) -> dict[str, Any]:
    """One melding of the caller's organisation, with its deliveries and history."""
    async with database.unit_of_work() as uow:
        row = await MeldingRepository(uow).get(melding_id)
        # Another organisation's melding is answered exactly like a missing one.
        if row is None or row.sender_org_id != principal.org_id:
            # Audited on its own (this transaction rolls back): probing for others' meldingen is traceable.
            record_refusal(
                uow,
                audit,
                service=SERVICE,
                principal=principal,
                action="read",
                resource_type="melding",
                resource_id=melding_id,
                patient_bsn=None,
                request_id=request_id,
                outcome="not-found",
            )
            raise NotFound("no melding with this id for your organisation")
        view = await _read(uow, melding_id)
        _audit(uow, principal, "read", melding_id, _bsn_of(view), request_id)
        await uow.commit()
        return view


async def list_meldingen(
    database: Database,
    *,
    principal: Principal,
    status: str | None,
    cursor: str | None,
    limit: int,
    request_id: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The caller's organisation's meldingen, newest first."""
    async with database.unit_of_work() as uow:
        repository = MeldingRepository(uow)
        rows = await repository.page_for_sender(org_id=principal.org_id, status=status, cursor=cursor, limit=limit)
        more = len(rows) > limit
        rows = rows[:limit]
        ids = [r.id for r in rows]
        deliveries, history = await repository.deliveries(ids), await repository.history(ids)
        items = [_view(r, deliveries[r.id], history[r.id]) for r in rows]
        for item in items:
            _audit(uow, principal, "read", item["id"], _bsn_of(item), request_id)
        await uow.commit()
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return items, next_cursor


# --- events from routing and consent -----------------------------------------------------------------


def _delivery(d: Any, status: str) -> DeliveryView:
    return DeliveryView(
        delivery_id=d.delivery_id, org_id=d.org_id, org_name=d.org_name, recipient_type=d.recipient_type, status=status
    )


async def on_melding_routed(uow: UnitOfWork, event: IncomingEvent) -> None:
    routed = MeldingRouted.model_validate(event.body)
    repository = MeldingRepository(uow)
    if not await repository.lock(routed.melding_id):
        return  # not ours (cannot happen unless the databases were reset): nothing to update
    at = now()
    for d in routed.deliveries:
        await repository.record_delivery(routed.melding_id, _delivery(d, "queued"), at)
    names = ", ".join(f"{d.recipient_type}: {d.org_name}" for d in routed.deliveries)
    await repository.add_history(routed.melding_id, at, "routed", names[:200] or None)
    await repository.set_routing(
        routed.melding_id,
        gemeente=routed.gemeente.model_dump() if routed.gemeente else None,
        unroutable_types=routed.unroutable_types,
        reported_unroutable=False,
        at=at,
    )


async def on_melding_unroutable(uow: UnitOfWork, event: IncomingEvent) -> None:
    unroutable = MeldingUnroutable.model_validate(event.body)
    repository = MeldingRepository(uow)
    if not await repository.lock(unroutable.melding_id):
        return
    at = now()
    await repository.add_history(
        unroutable.melding_id, at, "unroutable", "no recipient yet for " + ", ".join(unroutable.unroutable_types)
    )
    await repository.set_routing(
        unroutable.melding_id,
        gemeente=unroutable.gemeente.model_dump() if unroutable.gemeente else None,
        unroutable_types=unroutable.unroutable_types,
        reported_unroutable=True,
        at=at,
    )


async def on_delivery_status_changed(uow: UnitOfWork, event: IncomingEvent) -> None:
    changed = DeliveryStatusChanged.model_validate(event.body)
    repository = MeldingRepository(uow)
    if not await repository.lock(changed.melding_id):
        return
    if await repository.record_delivery(changed.melding_id, _delivery(changed.delivery, changed.status), changed.at):
        await repository.add_history(
            changed.melding_id,
            changed.at,
            f"delivery_{changed.status}",
            f"{changed.delivery.recipient_type}: {changed.delivery.org_name}"[:200],
        )
        await repository.refresh_status(changed.melding_id, changed.at)


async def on_consent_withdrawn(uow: UnitOfWork, event: IncomingEvent) -> None:
    """Withdraw the consent's meldingen and remove their personal data in this same transaction
    (CONTRACT.md: "Withdrawal removes personal data at once"); intake refuses the consent from now on."""
    withdrawn = ConsentWithdrawn.model_validate(event.body)
    for melding_id, bsn in await MeldingRepository(uow).withdraw_for_consent(withdrawn.consent_id, now()):
        record_access(
            uow,
            audit,
            service=SERVICE,
            principal=PLATFORM,
            action="update",
            resource_type="melding",
            resource_id=melding_id,
            patient_bsn=bsn,
            request_id=event.request_id,
            outcome="purged:consent-withdrawn",
        )
