"""Routing's event handlers: what it does with what reaches it — meldingen accepted and cancelled, consents
withdrawn, messages that died — and with the clock's rounds (contact deadlines, waiting meldingen the
directory now covers). The routing workflow itself is routing.py's."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import structlog

from services.routing.domain.commands import KeepDeadLetter
from services.routing.domain.model import (
    DeadLetter,
    RoutedMelding,
    RoutingStatus,
    choose,
    intake_check_is_fresh,
)
from services.routing.service_layer.commands import reroute
from services.routing.service_layer.ports import RoutingTransaction, TransactionFactory
from services.routing.service_layer.routing import (
    RouteRequest,
    cancel_melding,
    check_consent,
    mark_overdue,
    route,
    withdraw_consent,
)
from shared.clock import now
from shared.contracts.consent import ConsentCheckResult
from shared.contracts.events import ConsentHeartbeat, ConsentWithdrawn
from shared.contracts.melding import MeldingAccepted, MeldingCancelled
from shared.contracts.subscriptions import ROUTING_WITHDRAWALS
from shared.errors import NotFound
from shared.identifiers import postcode_area
from shared.messaging.consumer import IncomingEvent
from shared.ports import ConsentPort

log = structlog.get_logger(__name__)


async def prepare_accepted(
    client: ConsentPort,
    event: IncomingEvent[MeldingAccepted],
    *,
    recheck_after: timedelta,
    feed_is_current: Callable[[], Awaitable[bool]],
) -> ConsentCheckResult | None:
    """Before the transaction: ask the consent service again if a withdrawal may be on its way to routing.

    A melding is checked against routing's own record of withdrawals in the transaction (see `route`), which
    is enough when that record is current: the melding was checked at intake moments ago (within
    `recheck_after`: any withdrawal since reaches routing as `consent.withdrawn`), or routing heard the consent
    feed lately (`feed_is_current`: every withdrawal published before that heartbeat has been applied, however
    long the melding waited in a backlog). Otherwise (routing cut off from the withdrawals, after an outage) it
    is asked about again, so a withdrawal still on its way cannot let it out.
    """
    accepted = event.message
    if intake_check_is_fresh(accepted.accepted_at, now(), within=recheck_after) or await feed_is_current():
        return None
    return await check_consent(client, accepted, event.request_id)


async def on_consent_heartbeats(uow: RoutingTransaction, events: Sequence[IncomingEvent[ConsentHeartbeat]]) -> None:
    """The consent feed was heard: every withdrawal published before the latest of these has been applied."""
    await uow.routing.record_heartbeat(max(event.message.at for event in events))


async def on_meldingen_accepted(uow: RoutingTransaction, events: Sequence[IncomingEvent[MeldingAccepted]]) -> None:
    """Take and route the meldingen of a batch together: the ones routing has not seen are stored in one
    statement and routed without being read back; one seen before (its event came again) is routed as it
    stands. The same melding twice in one batch is routed once."""
    firsts: dict[str, IncomingEvent[MeldingAccepted]] = {}
    for event in events:
        firsts.setdefault(event.message.melding_id, event)
    known = await uow.routing.known_meldingen(firsts)
    at = now()
    new = [event.message for melding_id, event in firsts.items() if melding_id not in known]
    await uow.routing.add_meldingen([_taken(accepted, at) for accepted in new])
    await route(
        uow,
        [
            RouteRequest(
                melding_id,
                event.prepared,
                event.request_id,
                new=None if melding_id in known else event.message,
                traced=event.traced,
            )
            for melding_id, event in firsts.items()
        ],
    )


def _taken(accepted: MeldingAccepted, at: datetime) -> RoutedMelding:
    return RoutedMelding(
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


async def on_consent_withdrawn(uow: RoutingTransaction, event: IncomingEvent[ConsentWithdrawn]) -> None:
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


async def on_melding_cancelled(uow: RoutingTransaction, event: IncomingEvent[MeldingCancelled]) -> None:
    cancelled = event.message
    retracted = await cancel_melding(
        uow, cancelled.melding_id, cancelled.consent_id, cancelled.reason, request_id=event.request_id
    )
    log.info("melding_cancellation_applied", melding_id=cancelled.melding_id, retracted=retracted)


async def store_dead_letter(unit_of_work: TransactionFactory, command: KeepDeadLetter) -> None:
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


async def mark_overdue_deliveries(unit_of_work: TransactionFactory) -> int:
    """One round of the contact-deadline check (the worker runs it every `overdue_interval_seconds`)."""
    async with unit_of_work() as uow:
        marked = await mark_overdue(uow, now())
        await uow.commit()
    return marked


async def reroute_waiting(unit_of_work: TransactionFactory, client: ConsentPort) -> int:
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


async def has_new_recipient(uow: RoutingTransaction, melding: RoutedMelding) -> bool:
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
