"""Notifications to the subscribers' endpoints, from the notifications table (an outbox of HTTP calls).

A Subscription's notifications go in their order: what is waiting goes in one Bundle, and nothing newer
goes before an older one arrived. A failure (no answer, not 2xx) is retried with backoff (1 s, 2 s, …, at
most 10 minutes) for `notification_retry_hours`; then the Subscription goes to `error` and says since when.
Heartbeats go to a Subscription that asked for them and was sent nothing for that long. Several notifiers
(replicas) share the work through a lease; an endpoint may get a notification twice (at least once).

Endpoints are chosen by senders, so one sender's endpoint must not hold up another's notifications: each
attempt runs as a task of its own with one deadline for the whole exchange (connecting, sending, the
answer's status line); a round starts attempts without waiting for earlier ones to end; at most one
attempt per Subscription and `notification_concurrency_per_organisation` per organisation are in flight
(`notification_concurrency` in all), and organisations take turns; an answer's body is never read (only its
status counts); a Subscription whose stored header cannot be sent fails alone.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog

from services.fhir.adapters.endpoints import notification_client
from services.fhir.config import FhirSettings
from services.fhir.domain.codes import FHIR_JSON
from services.fhir.domain.endpoint import EndpointRefused, HeaderRefused, parse_headers
from services.fhir.domain.subscription import Event, delivery_error, notification_bundle, retry_after, take_turns
from services.fhir.service_layer.ports import FhirTransaction, TransactionFactory
from shared.clock import now as clock_now
from shared.db import is_database_unavailable

log = structlog.get_logger(__name__)

BATCH = 50  # subscriptions looked at per round; events per notification


class Notifier:
    def __init__(
        self,
        unit_of_work: TransactionFactory,
        settings: FhirSettings,
        *,
        http: httpx.AsyncClient | None = None,
        now: Callable[[], datetime] = clock_now,
    ) -> None:
        self.unit_of_work, self.settings, self.now = unit_of_work, settings, now
        self.base = settings.public_url.rstrip("/")
        self.http = http or notification_client(
            settings.endpoint_policy(), timeout=settings.notification_timeout_seconds
        )
        self.in_flight: dict[str, asyncio.Task[None]] = {}  # by subscription id
        self.per_organisation: Counter[str] = Counter()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something may be due now (a notification was stored, an attempt ended): look at once rather than at
        the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.start_due()
                except Exception as exc:  # noqa: BLE001 - the database away: the next round
                    level = "warning" if is_database_unavailable(exc) else "error"
                    getattr(log, level)("notifier_round_failed", error_type=type(exc).__name__)
                await _woken_or_stopped(stop, self._wake, self.settings.notification_poll_seconds)
                self._wake.clear()
        finally:
            for task in list(self.in_flight.values()):
                task.cancel()
            await asyncio.gather(*self.in_flight.values(), return_exceptions=True)
            await self.http.aclose()

    async def start_due(self) -> int:
        """One round: an attempt for each Subscription with notifications due, then for each heartbeat due,
        as far as the limits leave room — started, not awaited. Returns how many it started."""
        per_organisation = self.settings.notification_concurrency_per_organisation
        async with self.unit_of_work() as uow:
            due = await uow.subscriptions.due(self.now(), BATCH, per_organisation=per_organisation)
        started = sum(self._start(sid, org, self._send) for sid, org in due)
        async with self.unit_of_work() as uow:
            beats = take_turns(await uow.subscriptions.heartbeats_due(self.now()))
        return started + sum(self._start(sid, org, self._heartbeat) for sid, org in beats)

    async def send_due(self) -> int:
        """One round, waited for: what it started has ended when it returns. Returns how many it started."""
        started = await self.start_due()
        await self.idle()
        return started

    async def idle(self) -> None:
        """Wait until no attempt is in flight."""
        while self.in_flight:
            await asyncio.gather(*self.in_flight.values(), return_exceptions=True)

    def _start(self, subscription_id: str, org_id: str, attempt: Callable[[str], Any]) -> bool:
        if (
            subscription_id in self.in_flight
            or self.per_organisation[org_id] >= self.settings.notification_concurrency_per_organisation
            or len(self.in_flight) >= self.settings.notification_concurrency
        ):
            return False
        self.per_organisation[org_id] += 1
        task = asyncio.create_task(self._attempt(subscription_id, attempt))
        self.in_flight[subscription_id] = task

        def done(_: asyncio.Task[None]) -> None:
            self.in_flight.pop(subscription_id, None)
            self.per_organisation[org_id] -= 1
            if self.per_organisation[org_id] <= 0:
                del self.per_organisation[org_id]
            self.wake()  # a place is free: what waited for it may start

        task.add_done_callback(done)
        return True

    async def _attempt(self, subscription_id: str, attempt: Callable[[str], Any]) -> None:
        try:
            await attempt(subscription_id)
        except Exception as exc:  # noqa: BLE001 - one Subscription's failure is its own; the lease retries it
            level = "warning" if is_database_unavailable(exc) else "error"
            getattr(log, level)(
                "notification_attempt_failed", subscription_id=subscription_id, error_type=type(exc).__name__
            )

    async def _send(self, subscription_id: str) -> None:
        lease = timedelta(seconds=self.settings.notification_lease_seconds)
        async with self.unit_of_work() as uow:
            events, tried = await uow.subscriptions.claim(subscription_id, self.now(), lease, BATCH)
            target = await uow.subscriptions.target(subscription_id)
            await uow.commit()
        if not events or target is None:
            return
        error = await self._post(target.view.endpoint, target.headers, notification_bundle(
            target.view, self.base, events, now=self.now()))  # fmt: skip
        async with self.unit_of_work() as uow:
            if error is None:
                await uow.subscriptions.sent(subscription_id, [e.number for e in events], self.now())
            else:
                await self._failed(uow, subscription_id, events[0], tried + 1, error)
            await uow.commit()

    async def _failed(
        self, uow: FhirTransaction, subscription_id: str, first: Event, attempts: int, error: str
    ) -> None:
        now = self.now()
        if now - first.at > timedelta(hours=self.settings.notification_retry_hours):
            await uow.subscriptions.set_error(subscription_id, delivery_error(first.at))
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
        """POST the Bundle; None when the endpoint took it (2xx), else what went wrong (no content). The
        whole exchange has one deadline; the answer's body is not read (a huge or trickling one costs
        nothing) and the connection is closed with it."""
        try:
            sent = parse_headers(headers)  # checked when made; one stored before those checks fails alone
        except HeaderRefused:
            return "header refused"
        body = json.dumps(bundle).encode()
        try:
            async with asyncio.timeout(self.settings.notification_timeout_seconds):
                request = self.http.build_request(
                    "POST", endpoint, content=body, headers=[*sent, ("Content-Type", FHIR_JSON)]
                )
                response = await self.http.send(request, stream=True)
                await response.aclose()
        except TimeoutError:
            return "timeout"
        except EndpointRefused:
            return "address refused"
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
            return type(exc).__name__
        return None if response.is_success else f"HTTP {response.status_code}"


async def _woken_or_stopped(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
