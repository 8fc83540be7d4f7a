"""The FHIR facade's own use cases: subscriptions, and what a melding's change means for them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from prometheus_client import Gauge

from services.fhir.config import FhirSettings
from services.fhir.domain.outcome import FhirError, invalid
from services.fhir.domain.subscription import Event, SubscriptionView, subscription_request
from services.fhir.service_layer.ports import FhirTransaction, TransactionFactory
from shared.auth import Principal
from shared.clock import now
from shared.contracts.melding import MeldingChanged
from shared.messaging.consumer import IncomingEvent
from shared.observability import Metrics

RESOURCE = "Subscription"


async def create_subscription(
    unit_of_work: TransactionFactory,
    data: Any,
    *,
    principal: Principal,
    settings: FhirSettings,
    request_id: str | None,
) -> SubscriptionView:
    """A new Subscription of the caller's organisation, within its limit (422 beyond it)."""
    request = subscription_request(
        data,
        principal.org_id,
        endpoints=settings.endpoint_policy(),
        min_heartbeat=settings.subscription_min_heartbeat_seconds,
    )
    async with unit_of_work() as uow:
        limit = settings.subscriptions_per_organisation
        if await uow.subscriptions.lock_and_count(principal.org_id) >= limit:
            raise invalid(
                f"an organisation has at most {limit} Subscriptions: delete one it no longer needs",
                "Subscription",
                code="too-costly",
            )
        view = await uow.subscriptions.add(
            subscription_id=str(uuid.uuid4()),
            org_id=principal.org_id,
            request=request,
            created_by=principal.sub,
            at=now(),
        )
        uow.audit.record(principal, "create", RESOURCE, view.id, patient_bsn=None, request_id=request_id)
        await uow.commit()
    return view


async def read_subscription(
    unit_of_work: TransactionFactory, subscription_id: str, *, principal: Principal
) -> SubscriptionView:
    async with unit_of_work() as uow:
        view = await uow.subscriptions.get(subscription_id, principal.org_id)
    if view is None:
        raise FhirError(404, "not-found", "no Subscription with this id for your organisation")
    return view


async def delete_subscription(
    unit_of_work: TransactionFactory, subscription_id: str, *, principal: Principal, request_id: str | None
) -> None:
    async with unit_of_work() as uow:
        if not await uow.subscriptions.delete(subscription_id, principal.org_id):
            raise FhirError(404, "not-found", "no Subscription with this id for your organisation")
        uow.audit.record(principal, "update", RESOURCE, subscription_id, patient_bsn=None, request_id=request_id)
        await uow.commit()


async def on_meldingen_changed(uow: FhirTransaction, events: Sequence[IncomingEvent[MeldingChanged]]) -> None:
    """Meldingen's statuses (or their deliveries') changed: every active Subscription of each one's sender
    gets the next event, numbered per Subscription in the batch's order, waiting in the notifications table
    until its endpoint took it. The subscriptions are read in one statement, each one's numbers taken in one
    (in id order: the order every transaction locks them in), the notifications written in one."""
    active = await uow.subscriptions.active_of({event.message.sender_org_id for event in events})
    changes: dict[str, list[MeldingChanged]] = {}
    for event in events:
        for subscription_id in active.get(event.message.sender_org_id, []):
            changes.setdefault(subscription_id, []).append(event.message)
    numbered: list[tuple[str, Event]] = []
    for subscription_id in sorted(changes):
        its = changes[subscription_id]
        last = await uow.subscriptions.take_event_numbers(subscription_id, len(its))
        for number, changed in enumerate(its, start=last - len(its) + 1):
            numbered.append((subscription_id, Event(number, changed.melding_id, changed.at)))
    await uow.subscriptions.add_notifications(numbered)


class NotificationGauges:
    """What an operator alerts on for Subscriptions (docs/reliability.md), read at each scrape of /metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.pending = Gauge(
            "kansrijk_fhir_notifications_pending",
            "Notifications to active Subscriptions not yet taken by their endpoint",
            ["service"],
            registry=metrics.registry,
        )
        self.oldest = Gauge(
            "kansrijk_fhir_notification_oldest_seconds",
            "Age of the oldest notification not yet taken by its endpoint (0 when none)",
            ["service"],
            registry=metrics.registry,
        )
        self.in_error = Gauge(
            "kansrijk_fhir_subscriptions_in_error",
            "Subscriptions whose endpoint did not take a notification for notification_retry_hours",
            ["service"],
            registry=metrics.registry,
        )
        self.service = metrics.service

    async def refresh(self, unit_of_work: TransactionFactory) -> None:
        async with unit_of_work() as uow:
            pending, oldest, in_error = await uow.subscriptions.backlog(now())
        self.pending.labels(self.service).set(pending)
        self.oldest.labels(self.service).set(oldest)
        self.in_error.labels(self.service).set(in_error)
