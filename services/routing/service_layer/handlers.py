"""Use cases of the routing service: consuming meldingen and withdrawals, rerouting, recipients, dead letters."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import structlog

from services.routing.config import PublicBroker
from services.routing.domain.commands import KeepDeadLetter
from services.routing.domain.model import (
    Candidate,
    DeadLetter,
    DeliveryRecord,
    Organisation,
    Report,
    Returned,
    RoutedMelding,
    RoutingStatus,
    answer_report,
    check_acting_as,
    choose,
    intake_check_is_fresh,
    message_again,
)
from services.routing.service_layer.routing import (
    Answer,
    Routed,
    announce_status,
    cancel_melding,
    check_consent,
    mark_overdue,
    route,
    route_explained,
    withdraw_consent,
)
from services.routing.service_layer.unit_of_work import RoutingUnitOfWork, UnitOfWorkFactory
from services.routing.service_layer.views import Page, RecipientMessagesView, RecipientQueueView
from shared.auth import Principal
from shared.clients.consent import ConsentClient
from shared.clock import as_nl_date, now, today_nl
from shared.contracts.consent import ConsentCheckResult
from shared.contracts.events import ConsentWithdrawn
from shared.contracts.melding import MeldingAccepted, MeldingCancelled
from shared.contracts.subscriptions import ROUTING_WITHDRAWALS
from shared.contracts.vocabulary import DeliveryStatus
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.identifiers import postcode_area
from shared.messaging.consumer import IncomingEvent
from shared.messaging.topology import DELIVERIES_EXCHANGE, organisation_queue
from shared.observability import Metrics
from shared.pagination import encode_cursor

log = structlog.get_logger(__name__)


# --- events -----------------------------------------------------------------------------------------


async def prepare_accepted(
    client: ConsentClient, event: IncomingEvent[MeldingAccepted], *, recheck_after: timedelta
) -> ConsentCheckResult | None:
    """Before the transaction: ask the consent service again if the melding waited since its intake check.

    A melding routed right after intake (the normal case) is checked against routing's own record in the
    transaction (see `route`): the consent service answered for it moments ago, and any withdrawal since
    reaches routing as `consent.withdrawn`. One that waited longer than `recheck_after` (a backlog after
    an outage) is asked about again, so a withdrawal still on its way cannot let it out.
    """
    accepted = event.message
    if intake_check_is_fresh(accepted.accepted_at, now(), within=recheck_after):
        return None
    return await check_consent(client, accepted, event.request_id)


async def on_melding_accepted(uow: RoutingUnitOfWork, event: IncomingEvent[MeldingAccepted]) -> None:
    accepted = event.message
    new = None
    if not await uow.routing.has_melding(accepted.melding_id):
        at = now()
        await uow.routing.add_melding(
            RoutedMelding(
                melding_id=accepted.melding_id,
                consent_id=accepted.consent.id,
                sender_org_id=accepted.sender.org_id,
                status=RoutingStatus.new,
                accepted=accepted,
                requested_types=tuple(accepted.content.recipient_types),
                unroutable_types=(),
                gemeente_code=None,
                created_at=at,
                updated_at=at,
            )
        )
        new = accepted
    await route(uow, accepted.melding_id, event.prepared, request_id=event.request_id, new=new)


async def on_consent_withdrawn(uow: RoutingUnitOfWork, event: IncomingEvent[ConsentWithdrawn]) -> None:
    """Apply a withdrawal to every melding under the consent. A melding that could not be stopped does not
    hold up the others: the withdrawal commits for them, and the event is kept as a dead letter (alerted on,
    `GET /v1/dead-letters`) for an operator to replay once the cause is fixed — a replay applies it again,
    which changes nothing for the meldingen already stopped."""
    withdrawn = event.message
    done = await withdraw_consent(uow, withdrawn.consent_id, request_id=event.request_id)
    if done.not_stopped:
        await uow.routing.add_dead_letter(
            DeadLetter(
                id=str(uuid.uuid4()),
                queue=ROUTING_WITHDRAWALS.name,
                message_id=str(uuid.uuid4()),  # its own: the event itself counts as processed
                message_type=event.type,
                body=withdrawn.model_dump_json(),
                body_encoding="utf-8",
                correlation_id=event.correlation_id,
                reason=f"not-stopped: {len(done.not_stopped)} melding(en)",
                died_at=now(),
            )
        )
    log.info(
        "consent_withdrawn_applied",
        consent_id=withdrawn.consent_id,
        retracted=done.retracted,
        not_stopped=len(done.not_stopped),
    )


async def reroute(
    unit_of_work: UnitOfWorkFactory,
    client: ConsentClient,
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
        routed = await route_explained(uow, melding_id, answer, request_id=request_id, chosen=chosen)
        if principal is not None:  # an operator's act (the API, the console): audited with her as the actor
            bsn = accepted.content.patient.bsn
            uow.audit.record(principal, "update", "melding-routing", melding_id, patient_bsn=bsn, request_id=request_id)
        await uow.commit()
    return routed


async def _chosen(uow: RoutingUnitOfWork, melding: RoutedMelding, org_id: str | None) -> dict[str, Candidate]:
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


async def on_melding_cancelled(uow: RoutingUnitOfWork, event: IncomingEvent[MeldingCancelled]) -> None:
    cancelled = event.message
    retracted = await cancel_melding(
        uow, cancelled.melding_id, cancelled.consent_id, cancelled.reason, request_id=event.request_id
    )
    log.info("melding_cancellation_applied", melding_id=cancelled.melding_id, retracted=retracted)


async def mark_overdue_deliveries(unit_of_work: UnitOfWorkFactory) -> int:
    """One round of the contact-deadline check (the worker runs it every `overdue_interval_seconds`)."""
    async with unit_of_work() as uow:
        marked = await mark_overdue(uow, now())
        await uow.commit()
    return marked


async def reroute_waiting(unit_of_work: UnitOfWorkFactory, client: ConsentClient) -> int:
    """Route again every waiting melding the directory now covers better. Returns how many were routed.

    Runs on a schedule, so a directory change reaches waiting meldingen within one interval. The
    consent service is asked only for meldingen that found a new recipient.
    """
    async with unit_of_work() as uow:
        waiting = [m.melding_id for m in await uow.routing.waiting() if await has_new_recipient(uow, m)]
    routed = 0
    for melding_id in waiting:
        try:
            if (await reroute(unit_of_work, client, melding_id, request_id=None)).status is RoutingStatus.routed:
                routed += 1
        except NotFound:
            continue  # routed or withdrawn meanwhile
    return routed


async def has_new_recipient(uow: RoutingUnitOfWork, melding: RoutedMelding) -> bool:
    """Does the directory now serve a type this melding waits for? (Types the route map skipped do not wait;
    a type a recipient returned waits for an operator, not for the directory: routing it again on the
    schedule would only race the operator who does — and ask the consent service every round.)"""
    if melding.accepted is None:
        return False
    pc4 = postcode_area(melding.accepted.content.patient.address.postcode)
    gemeente = await uow.directory.gemeente_for_pc4(pc4)
    for recipient_type in melding.waiting_for_the_directory():
        if choose(
            await uow.directory.candidates(
                org_type=recipient_type, pc4=pc4, gemeente_code=gemeente.code if gemeente else None
            )
        ):
            return True
    return False


# --- recipients -----------------------------------------------------------------------------------


async def list_deliveries(
    unit_of_work: UnitOfWorkFactory,
    *,
    principal: Principal,
    status: DeliveryStatus | None,
    cursor: str | None,
    limit: int,
    request_id: str | None,
) -> Page[dict[str, Any]]:
    """The organisation's deliveries, newest first, each as its queue message (its stored document)."""
    async with unit_of_work() as uow:
        await _acting_as_registered(uow, principal, "read", request_id)
        found = await uow.routing.deliveries_page(org_id=principal.org_id, status=status, cursor=cursor, limit=limit)
        more = len(found) > limit
        found = found[:limit]
        for d in found:
            uow.audit.record(principal, "read", "delivery", d.delivery_id, patient_bsn=d.bsn, request_id=request_id)
        await uow.commit()
    next_cursor = encode_cursor(found[-1].created_at, found[-1].delivery_id) if more and found else None
    return Page([d.document() for d in found], next_cursor)


async def _acting_as_registered(
    uow: RoutingUnitOfWork,
    principal: Principal,
    action: str,
    request_id: str | None,
    delivery_id: str | None = None,
) -> Organisation | None:
    """The caller's organisation as the directory has it, if it acts as that kind of organisation (403
    otherwise, audited: a token with another's type is a probe worth tracing)."""
    organisation = await uow.directory.organisation(principal.org_id)
    try:
        check_acting_as(organisation.type if organisation else None, principal.org_type)
    except Forbidden:
        uow.audit.refuse(principal, action, "delivery", delivery_id, request_id=request_id, outcome="wrong-org-type")
        raise
    return organisation


async def _own_delivery(
    uow: RoutingUnitOfWork,
    principal: Principal,
    delivery_id: str,
    action: str,
    request_id: str | None,
    *,
    for_update: bool = False,
) -> DeliveryRecord:
    delivery = await uow.routing.delivery(delivery_id, for_update=for_update)
    if delivery is None or delivery.org_id != principal.org_id:
        # Audited on its own (this transaction rolls back): probing for others' deliveries is traceable.
        uow.audit.refuse(principal, action, "delivery", delivery_id, request_id=request_id, outcome="not-found")
        raise NotFound("no delivery with this id for your organisation")
    return delivery


async def recipient_queue(
    unit_of_work: UnitOfWorkFactory, *, principal: Principal, broker: PublicBroker, request_id: str | None = None
) -> RecipientQueueView:
    """The caller's organisation as the directory knows it, and the queue its deliveries wait on (on `broker`)."""
    async with unit_of_work() as uow:
        organisation = await _acting_as_registered(uow, principal, "read", request_id)
    if organisation is None:
        raise NotFound(
            "your organisation is not in the platform's directory: ask the coalition's functional "
            "administrator to register it (PUT /v1/organisations/{org_id})"
        )
    return RecipientQueueView(
        org_id=organisation.org_id,
        name=organisation.name,
        type=organisation.type,
        active=organisation.active,
        queue=organisation_queue(organisation.org_id),
        exchange=DELIVERIES_EXCHANGE,
        routing_key=organisation.org_id,
        broker=broker,
    )


async def recipient_messages(
    unit_of_work: UnitOfWorkFactory, *, principal: Principal, after_sequence: int, limit: int, request_id: str | None
) -> RecipientMessagesView:
    """The caller's queue again from `after_sequence` on, each read audited as a delivery's."""
    async with unit_of_work() as uow:
        await _acting_as_registered(uow, principal, "read", request_id)
        found = await uow.routing.recipient_messages_after(principal.org_id, after_sequence, limit)
        items = []
        for logged, delivery in found:
            item = message_again(logged, delivery)
            bsn = (item.get("patient") or {}).get("bsn")
            uow.audit.record(principal, "read", "delivery", logged.delivery_id, patient_bsn=bsn, request_id=request_id)
            items.append(item)
        await uow.commit()
    return RecipientMessagesView(items, found[-1][0].sequence if found else after_sequence)


async def get_delivery(
    unit_of_work: UnitOfWorkFactory, *, principal: Principal, delivery_id: str, request_id: str | None
) -> dict[str, Any]:
    async with unit_of_work() as uow:
        await _acting_as_registered(uow, principal, "read", request_id, delivery_id)
        delivery = await _own_delivery(uow, principal, delivery_id, "read", request_id)
        uow.audit.record(principal, "read", "delivery", delivery_id, patient_bsn=delivery.bsn, request_id=request_id)
        await uow.commit()
        return delivery.document()


async def report_status(
    unit_of_work: UnitOfWorkFactory,
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
        await _acting_as_registered(uow, principal, "status-change", request_id, delivery_id)
        if status is DeliveryStatus.returned and (consent_id := await uow.routing.consent_of(delivery_id=delivery_id)):
            # A return changes the melding (its returns, its status): first the lock every change of a
            # melding's routing takes, in the order routing and withdrawal take it (consent, then delivery),
            # so that the JGZ and the wijkteam returning one melding at once both count.
            await uow.routing.lock_consent(consent_id)
        # Locked until commit: concurrent reports on one delivery (and its retraction) take turns, so each
        # sees the status the one before it left and the status only moves forward.
        delivery = await _own_delivery(uow, principal, delivery_id, "status-change", request_id, for_update=True)
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


# --- dead letters ---------------------------------------------------------------------------------


async def store_dead_letter(unit_of_work: UnitOfWorkFactory, command: KeepDeadLetter) -> None:
    """Keep a message that failed processing, for an operator to read and replay: once per death."""
    try:
        body, encoding = command.body.decode("utf-8"), "utf-8"
        if "\x00" in body:  # PostgreSQL text holds no NUL
            raise UnicodeDecodeError("utf-8", command.body, 0, 1, "NUL byte")
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(command.body).decode(), "base64"
    async with unit_of_work() as uow:
        # The ack after this commit can be lost (a reconnect, a restart): the broker then delivers the same
        # dead letter again, to this keeper or another replica's, and it is kept once.
        if not await uow.routing.first_death(command.key, now()):
            log.info("dead_letter_duplicate_dropped", message_id=command.message_id)
            return
        await uow.routing.add_dead_letter(
            DeadLetter(
                id=str(uuid.uuid4()),
                queue=command.queue,
                message_id=command.message_id,
                message_type=command.message_type,
                body=body,
                body_encoding=encoding,
                correlation_id=command.correlation_id,
                reason=command.reason,
                died_at=now(),
            )
        )
        await uow.commit()


async def list_dead_letters(
    unit_of_work: UnitOfWorkFactory,
    *,
    principal: Principal,
    include_replayed: bool,
    limit: int,
    request_id: str | None,
) -> list[DeadLetter]:
    """Dead letters carry whole messages (personal data among them): handing them out is an audited export."""
    async with unit_of_work() as uow:
        letters = await uow.routing.dead_letters(include_replayed=include_replayed, limit=limit)
        for letter in letters:
            uow.audit.record(
                principal, "export", "dead_letter", letter.id, patient_bsn=_bsn_in(letter.body), request_id=request_id
            )
        await uow.commit()
        return letters


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


async def replay_dead_letter(
    unit_of_work: UnitOfWorkFactory, *, dead_letter_id: str, request_id: str | None, principal: Principal | None = None
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


# --- what operators alert on ----------------------------------------------------------------------


async def report_gauges(unit_of_work: UnitOfWorkFactory, metrics: Metrics) -> None:
    """Set routing's gauges for /metrics: meldingen waiting for a recipient, dead letters not replayed,
    deliveries past their contact deadline."""
    async with unit_of_work() as uow:
        waiting, dead = await uow.routing.count_waiting(), await uow.routing.count_dead_letters()
        overdue = await uow.routing.count_overdue()
    metrics.unroutable.labels(metrics.service).set(waiting)
    metrics.dead_letters.labels(metrics.service).set(dead)
    metrics.overdue.labels(metrics.service).set(overdue)
