"""A reference recipient (`kansrijk consume`): what a JGZ organisation's or wijkteam's consumer must do.

Take each message from the organisation's queue, drop duplicates by `message_id` (delivery is
at-least-once), keep the melding (here: show it), ack, and report `received` to the routing service.
On `melding.retracted`, delete what is held of that melding — and remember the retraction: with several
relays publishing at once a retraction can overtake its delivery, and a delivery that arrives after its
retraction must not be kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage
from tenacity import AsyncRetrying, retry_if_exception, retry_if_exception_type, stop_after_attempt, wait_exponential

from shared.messaging.broker import BrokerProblem, explain_broker_error
from shared.messaging.topology import organisation_queue


class ReferenceRecipient:
    def __init__(
        self,
        *,
        amqp_url: str,
        org_id: str,
        routing_url: str,
        token: str,
        show: Callable[[str, dict[str, Any]], None],
        report_attempts: int = 4,
        queue_wait_seconds: float = 30.0,
        answer: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.queue_wait_seconds = queue_wait_seconds
        # What to report of a delivery after `received`, in order (e.g. contact_made, then closed with an
        # outcome; or returned with a reason): how a recipient's system answers the platform.
        self.answer = answer or (lambda _delivery: [])
        self.amqp_url, self.org_id, self.routing_url, self.token = amqp_url, org_id, routing_url, token
        self.show = show
        self.report_attempts = report_attempts
        self.seen: set[str] = set()  # a real recipient keeps these with the melding, durably
        self.held: dict[str, dict[str, Any]] = {}
        self.retracted: set[str] = set()  # delivery ids; durably, like `seen`
        self.consuming = asyncio.Event()

    async def run(
        self, *, count: int | None = None, idle_timeout: float | None = None, stop: asyncio.Event | None = None
    ) -> int:
        """Consume until `count` messages were handled, `idle_timeout` s pass without one, or `stop` is set.

        A callback consumer on a robust connection: after a broker restart or a dropped connection the
        channel, the queue and this consumer are restored and consumption goes on by itself.
        """
        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        taken = handled = 0
        last_message = loop.time()
        async with httpx.AsyncClient(
            base_url=self.routing_url, timeout=10, headers={"Authorization": f"Bearer {self.token}"}
        ) as http:

            async def on_message(message: AbstractIncomingMessage) -> None:
                nonlocal taken, handled, last_message
                taken += 1
                if stop.is_set() or (count is not None and taken > count):
                    await message.nack(requeue=True)  # not ours to take: left for the next consumer
                    return
                last_message = loop.time()
                await self.handle(message, http)
                handled += 1
                if count is not None and handled >= count:
                    stop.set()

            connection, queue, tag = await self._start_consuming(on_message)
            self.consuming.set()
            try:
                while not stop.is_set():
                    wait = 1.0
                    if idle_timeout is not None:
                        wait = min(wait, last_message + idle_timeout - loop.time())
                        if wait <= 0:
                            break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=wait)
                with contextlib.suppress(Exception):
                    await queue.cancel(tag)
            finally:
                await connection.close()
        return handled

    async def _start_consuming(self, on_message: Callable[[AbstractIncomingMessage], Any]) -> tuple[Any, Any, str]:
        """Connect, find the queue and start the consumer. Until this has succeeded nothing is robust yet, so a
        broker that is away (or goes away half-way) is waited for with backoff, as the services do; a refused
        login or vhost is not (waiting will not fix it): `BrokerRefused` says what to do."""

        def transient(exc: BaseException) -> bool:
            return (
                isinstance(exc, OSError | aio_pika.exceptions.AMQPError)
                and not isinstance(exc, QueueMissing)
                and not explain_broker_error(exc, self.amqp_url).configuration
            )

        try:
            async for attempt in AsyncRetrying(
                wait=wait_exponential(0.5, max=10), reraise=True, retry=retry_if_exception(transient)
            ):
                with attempt:
                    connection = await aio_pika.connect_robust(self.amqp_url)
                    try:
                        queue = await self._existing_queue(connection)
                        tag = await queue.consume(on_message)
                    except BaseException:
                        await connection.close()
                        raise
        except (OSError, aio_pika.exceptions.AMQPError) as exc:
            if isinstance(exc, QueueMissing):
                raise
            raise BrokerRefused(explain_broker_error(exc, self.amqp_url)) from exc
        return connection, queue, tag

    async def _existing_queue(self, connection: Any) -> Any:
        """The organisation's queue, declared passively: the platform declares it when the organisation is
        registered; a recipient never creates queues or exchanges (in a vhost where no platform runs, it
        would create an orphan nobody delivers to). A queue that is not there yet is waited for a while
        (the routing worker declares it within one round after a registration the broker missed)."""
        name = organisation_queue(self.org_id)
        deadline = asyncio.get_running_loop().time() + self.queue_wait_seconds
        while True:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=10)
            try:
                return await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                if asyncio.get_running_loop().time() >= deadline:
                    raise QueueMissing(name) from None
                await asyncio.sleep(1.0)

    async def handle(self, message: AbstractIncomingMessage, http: httpx.AsyncClient) -> None:
        message_id = message.message_id or ""
        if message_id in self.seen:
            self.show("duplicate", {"message_id": message_id})
            await message.ack()
            return
        body = json.loads(message.body)
        overtaken = message.type == "melding.delivered" and body["delivery_id"] in self.retracted
        if message.type == "melding.retracted":
            self.retracted.add(body["delivery_id"])
            self.held.pop(body["melding_id"], None)
            self.show("retracted", body)
        elif message.type == "melding.reminder":  # contact is overdue: a person should act on it
            self.show("reminder", body)
        elif message.type != "melding.delivered":  # a type this version does not know: ack it, ignore it
            self.show("ignored", {"type": message.type or "", "message_id": message_id})
        elif overtaken:  # its retraction came first: the consent was withdrawn, nothing is kept
            self.show("dropped-retracted", {"delivery_id": body["delivery_id"], "melding_id": body["melding_id"]})
        else:
            self.held[body["melding_id"]] = body
            self.show("delivered", body)
        self.seen.add(message_id)
        await message.ack()
        if message.type == "melding.delivered" and not overtaken:
            for answer in [{"status": "received"}, *self.answer(body)]:
                if not await self.report(http, body["delivery_id"], answer):
                    break

    async def report(self, http: httpx.AsyncClient, delivery_id: str, answer: dict[str, Any]) -> bool:
        """Best effort: the melding is kept whatever happens here; a recipient can report again later.
        False if the report did not go through."""
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.report_attempts),
                wait=wait_exponential(0.2, max=2),
                retry=retry_if_exception_type((httpx.TransportError, _TryAgain)),
                reraise=True,
            ):
                with attempt:
                    response = await http.post(f"/v1/deliveries/{delivery_id}/status", json=answer)
                    if response.status_code >= 500:  # 503 while its database restarts: the same report again
                        raise _TryAgain
        except (httpx.TransportError, _TryAgain):
            self.show("status_failed", {"delivery_id": delivery_id, "status": "routing service unreachable"})
            return False
        if response.status_code not in (200, 409):
            self.show("status_failed", {"delivery_id": delivery_id, "status": response.status_code})
            return False
        self.show("reported", {"delivery_id": delivery_id, **answer})
        return True


class QueueMissing(aio_pika.exceptions.AMQPError):
    """The organisation's queue does not exist on this vhost: the platform has not registered it here."""

    def __init__(self, queue: str) -> None:
        super().__init__(queue)
        self.queue = queue


class BrokerRefused(Exception):
    """RabbitMQ refused the login or the vhost: a configuration error, said with its fix."""

    def __init__(self, problem: BrokerProblem) -> None:
        super().__init__(problem.cause)
        self.problem = problem


class _TryAgain(Exception):
    """The routing service answered 5xx: the report is retried like a transport error."""
