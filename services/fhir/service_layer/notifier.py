"""Notifications to the subscribers' endpoints, from the notifications table (an outbox of HTTP calls).

A Subscription's notifications go in their order: what is waiting goes in one Bundle, and nothing newer
goes before an older one arrived. A failure (no answer, not 2xx) is retried with backoff (1 s, 2 s, …, at
most 10 minutes) for `notification_retry_hours`; then the Subscription goes to `error` and says why.
Heartbeats go to a Subscription that asked for them and was sent nothing for that long. Several notifiers
(replicas) share the work through a lease; an endpoint may get a notification twice (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import structlog

from services.fhir.config import FhirSettings
from services.fhir.domain.codes import FHIR_JSON
from services.fhir.domain.subscription import Event, notification_bundle, retry_after
from services.fhir.service_layer.unit_of_work import FhirUnitOfWork, UnitOfWorkFactory
from shared.clock import now as clock_now
from shared.db import is_database_unavailable

log = structlog.get_logger(__name__)

BATCH = 50  # subscriptions looked at per round; events per notification


class Notifier:
    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        settings: FhirSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], datetime] = clock_now,
    ) -> None:
        self.unit_of_work, self.settings, self.now = unit_of_work, settings, now
        self.base = settings.public_url.rstrip("/")
        self.http = httpx.AsyncClient(timeout=settings.notification_timeout_seconds, transport=transport)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.send_due()
                except Exception as exc:  # noqa: BLE001 - the database away: the next round
                    level = "warning" if is_database_unavailable(exc) else "error"
                    getattr(log, level)("notifier_round_failed", error_type=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.notification_poll_seconds)
        finally:
            await self.http.aclose()

    async def send_due(self) -> int:
        """One round: what is due, then heartbeats. Returns how many notifications reached their endpoint."""
        async with self.unit_of_work() as uow:
            due = await uow.subscriptions.due(self.now(), BATCH)
        sent = 0
        for subscription_id in due:
            sent += await self._send(subscription_id)
        async with self.unit_of_work() as uow:
            beats = await uow.subscriptions.heartbeats_due(self.now())
        for subscription_id in beats:
            await self._heartbeat(subscription_id)
        return sent

    async def _send(self, subscription_id: str) -> int:
        lease = timedelta(seconds=self.settings.notification_lease_seconds)
        async with self.unit_of_work() as uow:
            events, tried = await uow.subscriptions.claim(subscription_id, self.now(), lease, BATCH)
            target = await uow.subscriptions.target(subscription_id)
            await uow.commit()
        if not events or target is None:
            return 0
        error = await self._post(target.view.endpoint, target.headers, notification_bundle(
            target.view, self.base, events, now=self.now()))  # fmt: skip
        async with self.unit_of_work() as uow:
            if error is None:
                await uow.subscriptions.sent(subscription_id, [e.number for e in events], self.now())
            else:
                await self._failed(uow, subscription_id, events[0], tried + 1, error)
            await uow.commit()
        return len(events) if error is None else 0

    async def _failed(self, uow: FhirUnitOfWork, subscription_id: str, first: Event, attempts: int, error: str) -> None:
        now = self.now()
        if now - first.at > timedelta(hours=self.settings.notification_retry_hours):
            hours = self.settings.notification_retry_hours
            reason = (
                f"notifications could not be delivered for {hours:g} h (last: {error}); the endpoint must answer 2xx"
            )
            await uow.subscriptions.set_error(subscription_id, reason[:500])
            log.warning("subscription_in_error", subscription_id=subscription_id, error=error)
            return
        retry_at = now + retry_after(attempts)
        await uow.subscriptions.failed(subscription_id, first.number, attempts=attempts, error=error, retry_at=retry_at)
        log.info("notification_failed", subscription_id=subscription_id, error=error, attempts=attempts)

    async def _heartbeat(self, subscription_id: str) -> None:
        async with self.unit_of_work() as uow:
            target = await uow.subscriptions.target(subscription_id)
        if target is None:
            return
        bundle = notification_bundle(target.view, self.base, [], now=self.now(), heartbeat=True)
        if await self._post(target.view.endpoint, target.headers, bundle) is None:
            async with self.unit_of_work() as uow:
                await uow.subscriptions.touch(subscription_id, self.now())
                await uow.commit()

    async def _post(self, endpoint: str, headers: list[str], bundle: dict[str, object]) -> str | None:
        """POST the Bundle; None when the endpoint took it (2xx), else what went wrong (no content)."""
        sent = {name.strip(): value.strip() for name, value in (h.split(":", 1) for h in headers)}
        try:
            response = await self.http.post(endpoint, json=bundle, headers={**sent, "Content-Type": FHIR_JSON})
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return None if response.is_success else f"HTTP {response.status_code}"
