"""Use cases of the routing service: consuming meldingen and withdrawals, rerouting, recipients, dead letters."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage

from services.routing.adapters.orm import audit, outbox
from services.routing.adapters.repository import DirectoryRepository, RoutingRepository
from services.routing.domain.model import choose, intake_check_is_fresh, next_status
from services.routing.service_layer.routing import (
    announce_status,
    check_consent,
    parse_accepted,
    route,
    withdraw_consent,
)
from shared.audit import record_access, record_refusal
from shared.auth import Principal
from shared.clients.consent import ConsentClient
from shared.clock import now
from shared.contracts.events import ConsentWithdrawn
from shared.contracts.melding import MeldingAccepted
from shared.db import Database, UnitOfWork
from shared.errors import Conflict, NotFound
from shared.messaging.consumer import IncomingEvent
from shared.messaging.outbox import stage_again
from shared.messaging.topology import DELIVERIES_EXCHANGE, organisation_queue
from shared.observability import Metrics
from shared.pagination import encode_cursor

SERVICE = "routing"
log = structlog.get_logger(__name__)


# --- events -----------------------------------------------------------------------------------------


async def prepare_accepted(client: ConsentClient, event: IncomingEvent, *, recheck_after: timedelta) -> Any:
    """Before the transaction: ask the consent service again if the melding waited since its intake check.

    A melding routed right after intake (the normal case) is checked against routing's own record in the
    transaction (see `route`): the consent service answered for it moments ago, and any withdrawal since
    reaches routing as `consent.withdrawn`. One that waited longer than `recheck_after` (a backlog after
    an outage) is asked about again, so a withdrawal still on its way cannot let it out.
    """
    accepted = MeldingAccepted.model_validate(event.body, context={"stored": True})
    if intake_check_is_fresh(accepted.accepted_at, now(), within=recheck_after):
        return None
    return await check_consent(client, accepted, event.request_id)


async def on_melding_accepted(uow: UnitOfWork, event: IncomingEvent) -> None:
    accepted = MeldingAccepted.model_validate(event.body, context={"stored": True})
    repository = RoutingRepository(uow)
    new = None
    if await repository.melding(accepted.melding_id) is None:
        at = now()
        await repository.add_melding(
            melding_id=accepted.melding_id,
            consent_id=accepted.consent.id,
            sender_org_id=accepted.sender.org_id,
            status="new",
            accepted=accepted.model_dump_json(),
            requested_types=",".join(accepted.content.recipient_types),
            unroutable_types="",
            created_at=at,
            updated_at=at,
            expected_due_date=accepted.content.pregnancy.expected_due_date,
        )
        new = accepted
    await route(uow, accepted.melding_id, event.prepared, request_id=event.request_id, new=new)


async def on_consent_withdrawn(uow: UnitOfWork, event: IncomingEvent) -> None:
    withdrawn = ConsentWithdrawn.model_validate(event.body)
    retracted = await withdraw_consent(uow, withdrawn.consent_id, request_id=event.request_id)
    log.info("consent_withdrawn_applied", consent_id=withdrawn.consent_id, retracted=retracted)


async def reroute(database: Database, client: ConsentClient, melding_id: str, *, request_id: str | None) -> str:
    """Route one waiting melding again now."""
    async with database.unit_of_work() as uow:
        row = await RoutingRepository(uow).melding(melding_id)
        if row is None or row.status not in ("new", "waiting") or row.accepted is None:  # None: purged
            raise NotFound("no melding with this id is waiting for a recipient")
        accepted = parse_accepted(row.accepted)
    answer = await check_consent(client, accepted, request_id)
    async with database.unit_of_work() as uow:
        status = await route(uow, melding_id, answer, request_id=request_id)
        await uow.commit()
    return status


async def reroute_waiting(database: Database, client: ConsentClient) -> int:
    """Route again every waiting melding the directory now covers better. Returns how many were routed.

    Runs on a schedule, so a directory change reaches waiting meldingen within one interval. The
    consent service is asked only for meldingen that found a new recipient.
    """
    async with database.unit_of_work() as uow:
        waiting = [
            row.melding_id for row in await RoutingRepository(uow).waiting() if await has_new_recipient(uow, row)
        ]
    routed = 0
    for melding_id in waiting:
        try:
            if await reroute(database, client, melding_id, request_id=None) == "routed":
                routed += 1
        except NotFound:
            continue  # routed or withdrawn meanwhile
    return routed


async def has_new_recipient(uow: UnitOfWork, row: Any) -> bool:
    accepted = parse_accepted(row.accepted)
    pc4 = accepted.content.patient.address.postcode[:4]
    directory = DirectoryRepository(uow)
    gemeente = await directory.gemeente_for_pc4(pc4)
    served = {d.recipient_type for d in await RoutingRepository(uow).deliveries_of(row.melding_id)}
    for recipient_type in set(accepted.content.recipient_types) - served:
        if choose(
            await directory.candidates(
                org_type=recipient_type, pc4=pc4, gemeente_code=gemeente.code if gemeente else None
            )
        ):
            return True
    return False


# --- recipients -----------------------------------------------------------------------------------


def delivery_document(row: Any) -> dict[str, Any]:
    return {**json.loads(row.message), "status": row.status}


def _audit(
    uow: UnitOfWork,
    principal: Principal,
    action: str,
    resource_type: str,
    resource_id: str | None,
    bsn: str | None,
    request_id: str | None,
) -> None:
    record_access(
        uow,
        audit,
        service=SERVICE,
        principal=principal,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        patient_bsn=bsn,
        request_id=request_id,
    )


def _bsn_of(document: dict[str, Any]) -> str | None:
    return (document.get("patient") or {}).get("bsn")


async def list_deliveries(
    database: Database,
    *,
    principal: Principal,
    status: str | None,
    cursor: str | None,
    limit: int,
    request_id: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    async with database.unit_of_work() as uow:
        rows = await RoutingRepository(uow).deliveries_page(
            org_id=principal.org_id, status=status, cursor=cursor, limit=limit
        )
        more = len(rows) > limit
        rows = rows[:limit]
        documents = [delivery_document(r) for r in rows]
        for document in documents:
            _audit(uow, principal, "read", "delivery", document["delivery_id"], _bsn_of(document), request_id)
        await uow.commit()
    return documents, (encode_cursor(rows[-1].created_at, rows[-1].delivery_id) if more and rows else None)


async def _own_delivery(
    uow: UnitOfWork,
    principal: Principal,
    delivery_id: str,
    action: str,
    request_id: str | None,
    *,
    for_update: bool = False,
) -> Any:
    row = await RoutingRepository(uow).delivery(delivery_id, for_update=for_update)
    if row is None or row.org_id != principal.org_id:
        # Audited on its own (this transaction rolls back): probing for others' deliveries is traceable.
        record_refusal(
            uow,
            audit,
            service=SERVICE,
            principal=principal,
            action=action,
            resource_type="delivery",
            resource_id=delivery_id,
            patient_bsn=None,
            request_id=request_id,
            outcome="not-found",
        )
        raise NotFound("no delivery with this id for your organisation")
    return row


async def recipient_queue(database: Database, *, principal: Principal) -> dict[str, Any]:
    """The caller's organisation as the directory knows it, and the queue its deliveries wait on."""
    async with database.unit_of_work() as uow:
        organisation = await DirectoryRepository(uow).organisation(principal.org_id)
    if organisation is None:
        raise NotFound(
            "your organisation is not in the platform's directory: ask the coalition's functional "
            "administrator to register it (PUT /v1/organisations/{org_id})"
        )
    return {
        "org_id": organisation.org_id,
        "name": organisation.name,
        "type": organisation.type,
        "active": bool(organisation.active),
        "queue": organisation_queue(organisation.org_id),
        "exchange": DELIVERIES_EXCHANGE,
        "routing_key": organisation.org_id,
    }


async def get_delivery(
    database: Database, *, principal: Principal, delivery_id: str, request_id: str | None
) -> dict[str, Any]:
    async with database.unit_of_work() as uow:
        row = await _own_delivery(uow, principal, delivery_id, "read", request_id)
        document = delivery_document(row)
        _audit(uow, principal, "read", "delivery", delivery_id, _bsn_of(document), request_id)
        await uow.commit()
        return document


async def report_status(
    database: Database, *, principal: Principal, delivery_id: str, status: str, note: str | None, request_id: str | None
) -> dict[str, Any]:
    """A recipient reports back. Forward only; the same status again changes nothing."""
    async with database.unit_of_work() as uow:
        repository = RoutingRepository(uow)
        # Locked until commit: concurrent reports on one delivery (and its retraction) take turns, so each
        # sees the status the one before it left and the status only moves forward.
        row = await _own_delivery(uow, principal, delivery_id, "status-change", request_id, for_update=True)
        new = next_status(row.status, status)
        if new is None:
            return delivery_document(row)
        at = now()
        await repository.update_delivery(delivery_id, status=new, status_note=note, updated_at=at)
        await announce_status(uow, row, new, at, request_id=request_id)
        _audit(uow, principal, "status-change", "delivery", delivery_id, _bsn_of(json.loads(row.message)), request_id)
        await uow.commit()
        row = await repository.delivery(delivery_id)
        return delivery_document(row)


# --- dead letters ---------------------------------------------------------------------------------


async def store_dead_letter(database: Database, message: AbstractIncomingMessage) -> None:
    """Keep a message that failed processing, for an operator to read and replay."""
    headers = dict(message.headers or {})
    queue = headers.get("x-first-death-queue") or ""
    reason = headers.get("x-first-death-reason") or ""
    try:
        body, encoding = message.body.decode("utf-8"), "utf-8"
        if "\x00" in body:  # PostgreSQL text holds no NUL
            raise UnicodeDecodeError("utf-8", message.body, 0, 1, "NUL byte")
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(message.body).decode(), "base64"
    async with database.unit_of_work() as uow:
        await RoutingRepository(uow).add_dead_letter(
            id=str(uuid.uuid4()),
            queue=queue.decode() if isinstance(queue, bytes) else str(queue),
            message_id=message.message_id,
            message_type=message.type,
            body=body,
            body_encoding=encoding,
            correlation_id=message.correlation_id,
            reason=reason.decode() if isinstance(reason, bytes) else str(reason),
            died_at=now(),
        )
        await uow.commit()


async def list_dead_letters(
    database: Database, *, principal: Principal, include_replayed: bool, limit: int, request_id: str | None
) -> list[Any]:
    """Dead letters carry whole messages (personal data among them): handing them out is an audited export."""
    async with database.unit_of_work() as uow:
        rows = await RoutingRepository(uow).dead_letters(include_replayed=include_replayed, limit=limit)
        for row in rows:
            _audit(uow, principal, "export", "dead_letter", row.id, _bsn_in(row.body), request_id)
        await uow.commit()
        return rows


def _bsn_in(body: str) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    patient = document.get("patient") or (document.get("content") or {}).get("patient") or {}
    bsn = patient.get("bsn") if isinstance(patient, dict) else None
    return bsn if isinstance(bsn, str) and len(bsn) == 9 and bsn.isdigit() else None


async def replay_dead_letter(database: Database, *, dead_letter_id: str, request_id: str | None) -> Any:
    """Put a dead letter back on the queue it died in, with its own message id (consumers still dedupe)."""
    async with database.unit_of_work() as uow:
        repository = RoutingRepository(uow)
        # Locked: two operators replaying one letter at once replay it once.
        row = await repository.dead_letter(dead_letter_id, for_update=True)
        if row is None:
            raise NotFound("no dead letter with this id")
        if row.body_encoding != "utf-8":
            raise Conflict("this message was unreadable (not UTF-8 JSON): replaying it would fail again")
        if row.replayed_at is None:
            # The default exchange routes by queue name: straight back to where it failed, to no one else.
            # The same message_id as the first time (a delivery's id), though our outbox may still hold it.
            await stage_again(
                uow,
                outbox,
                exchange="",
                routing_key=row.queue,
                message_type=row.message_type or "",
                body=row.body,
                message_id=row.message_id or str(uuid.uuid4()),
                correlation_id=row.correlation_id,
                request_id=request_id,
                mandatory=True,
            )
            await repository.mark_replayed(dead_letter_id, now())
            await uow.commit()
        return await repository.dead_letter(dead_letter_id)


# --- what operators alert on ----------------------------------------------------------------------


async def report_gauges(database: Database, metrics: Metrics) -> None:
    """Set routing's gauges for /metrics: meldingen waiting for a recipient, dead letters not replayed."""
    async with database.unit_of_work() as uow:
        repository = RoutingRepository(uow)
        waiting, dead = await repository.count_waiting(), await repository.count_dead_letters()
    metrics.unroutable.labels(metrics.service).set(waiting)
    metrics.dead_letters.labels(metrics.service).set(dead)
