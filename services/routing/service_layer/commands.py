"""Routing's commands: what operators and recipients ask it to do — send a waiting melding on, report back on
a delivery, replay a dead letter. Each checks who asks, acts in one transaction and is audited."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date
from typing import Any

from services.routing.domain.model import (
    Candidate,
    DeadLetter,
    Report,
    Returned,
    RoutedMelding,
    answer_report,
)
from services.routing.service_layer.ports import RoutingTransaction, TransactionFactory
from services.routing.service_layer.queries import acting_as_registered, own_delivery
from services.routing.service_layer.routing import (
    Answer,
    Routed,
    RouteRequest,
    announce_status,
    check_consent,
    route,
)
from shared.auth import Principal
from shared.clock import as_nl_date, now, today_nl
from shared.contracts.vocabulary import DeliveryStatus
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.ports import ConsentPort


async def reroute(
    unit_of_work: TransactionFactory,
    client: ConsentPort,
    melding_id: str,
    *,
    request_id: str | None,
    org_id: str | None = None,
    by_operator: bool = False,
    principal: Principal | None = None,
) -> Routed:
    """Route one waiting melding again now. `by_operator`: an operator acts on it, so a type a recipient
    returned is routed too — to `org_id` when given (an active organisation of a returned type), else by
    the directory (never to an organisation that returned it as the wrong recipient). Returns its status
    and, if it still waits, why."""
    async with unit_of_work() as uow:
        melding = await uow.routing.melding(melding_id)
        if melding is None or not melding.status.routable or melding.accepted is None:  # None: purged
            raise NotFound("no melding with this id is waiting for a recipient")
        accepted = melding.accepted
        chosen = await _chosen(uow, melding, org_id) if by_operator else None
    answer = await check_consent(client, accepted, request_id)
    async with unit_of_work() as uow:
        [routed] = await route(uow, [RouteRequest(melding_id, answer, request_id, chosen=chosen)])
        if principal is not None:  # an operator's act (the API, the console): audited with her as the actor
            bsn = accepted.content.patient.bsn
            uow.audit.record(principal, "update", "melding-routing", melding_id, patient_bsn=bsn, request_id=request_id)
        await uow.commit()
    return routed


async def _chosen(uow: RoutingTransaction, melding: RoutedMelding, org_id: str | None) -> dict[str, Candidate]:
    """The operator's choice for a returned type, checked: an active organisation of that type."""
    if org_id is None:
        return {}
    organisation = await uow.directory.organisation(org_id)
    if organisation is None or not organisation.active:
        raise ValidationFailed("org_id", "no active organisation with this id")
    if not melding.waits_for(organisation.type):
        raise Conflict(f"this melding waits for no {organisation.type} organisation")
    return {
        organisation.type: Candidate(
            organisation.org_id, organisation.name, by_range=False, delivery_mode=organisation.delivery_mode
        )
    }


async def report_status(
    unit_of_work: TransactionFactory,
    *,
    principal: Principal,
    delivery_id: str,
    status: DeliveryStatus,
    note: str | None,
    request_id: str | None,
    contact_at: date | None = None,
    outcome: str | None = None,
    returned_reason: str | None = None,
) -> dict[str, Any]:
    """A recipient reports back; what it may report is the domain's (domain/model.py::answer_report): forward
    only, the same report again changes nothing, a repeat that says something else is 409. `returned`: the
    melding then waits for an operator (GET /v1/unroutable)."""
    async with unit_of_work() as uow:
        await acting_as_registered(uow, principal, "status-change", request_id, delivery_id)
        if status is DeliveryStatus.returned and (consent_id := await uow.routing.consent_of(delivery_id=delivery_id)):
            # A return changes the melding (its returns, its status): first the lock every change of a
            # melding's routing takes, in the order routing and withdrawal take it (consent, then delivery),
            # so that the JGZ and the wijkteam returning one melding at once both count.
            await uow.routing.lock_consent(consent_id)
        # Locked until commit: concurrent reports on one delivery (and its retraction) take turns, so each
        # sees the status the one before it left and the status only moves forward.
        delivery = await own_delivery(uow, principal, delivery_id, "status-change", request_id, for_update=True)
        report = Report(status, note=note, contact_at=contact_at, outcome=outcome, returned_reason=returned_reason)
        answered = answer_report(delivery, report, today=today_nl(), delivered_on=as_nl_date(delivery.created_at))
        if answered is None:  # the same report again
            return delivery.document()
        at, new = now(), answered.status
        answer = Answer(
            contact_at=answered.contact_at, outcome=answered.outcome, returned_reason=answered.returned_reason
        )
        await uow.routing.set_delivery_status(
            delivery_id,
            new,
            note=note,
            at=at,
            contact_at=answer.contact_at,
            outcome=answer.outcome,
            returned_reason=answer.returned_reason,
        )
        if new is DeliveryStatus.returned:
            melding = await uow.routing.melding(delivery.melding_id)
            assert melding is not None and answer.returned_reason is not None
            await uow.routing.record_return(
                melding, Returned(delivery.recipient_type, delivery.org_id, answer.returned_reason), at
            )
        await announce_status(uow, delivery, new, at, request_id=request_id, answer=answer)
        uow.audit.record(
            principal, "status-change", "delivery", delivery_id, patient_bsn=delivery.bsn, request_id=request_id
        )
        await uow.commit()
        return replace(delivery, status=new, status_note=note, updated_at=at).document()


async def replay_dead_letter(
    unit_of_work: TransactionFactory, *, dead_letter_id: str, request_id: str | None, principal: Principal | None = None
) -> DeadLetter:
    """Put a dead letter back on the queue it died in, with its own message id (consumers still dedupe)."""
    async with unit_of_work() as uow:
        # Locked: two operators replaying one letter at once replay it once.
        letter = await uow.routing.dead_letter(dead_letter_id, for_update=True)
        if letter is None:
            raise NotFound("no dead letter with this id")
        if letter.body_encoding != "utf-8":
            raise Conflict("this message was unreadable (not UTF-8 JSON): replaying it would fail again")
        if letter.replayed_at is not None:
            return letter
        # The default exchange routes by queue name: straight back to where it failed, to no one else.
        # The same message_id as the first time (a delivery's id), though our outbox may still hold it.
        await uow.outbox.stage_again(
            exchange="",
            routing_key=letter.queue,
            message_type=letter.message_type or "",
            body=letter.body,
            message_id=letter.message_id or str(uuid.uuid4()),
            correlation_id=letter.correlation_id,
            request_id=request_id,
            mandatory=True,
        )
        at = now()
        await uow.routing.mark_replayed(dead_letter_id, at)
        if principal is not None:
            uow.audit.record(
                principal, "update", "dead-letter", dead_letter_id, patient_bsn=None, request_id=request_id
            )
        await uow.commit()
        return replace(letter, replayed_at=at)
