"""A reference recipient (`kansrijk consume`): what a JGZ organisation's or wijkteam's consumer must do.

Take each message from the organisation's queue, drop duplicates by `message_id` (delivery is
at-least-once), keep the melding (here: show it), ack, and report `received` to the routing service.
On `melding.retracted`, delete what is held of that melding — and remember the retraction: with several
relays publishing at once a retraction can overtake its delivery, and a delivery that arrives after its
retraction must not be kept.

Every message carries `sequence`, 1, 2, 3, … for the organisation. A number missing below the highest
seen is a message not (yet) seen: it is fetched with `GET /v1/deliveries/messages?after_sequence=N` and
handled like one from the queue (one that arrives later after all is a duplicate). A thin delivery
(`href`, no patient) is fetched from `href` with the organisation's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage
from tenacity import AsyncRetrying, retry_if_exception, retry_if_exception_type, stop_after_attempt, wait_exponential

from shared.messaging.broker import BrokerProblem, connect_failover, explain_broker_error, node_urls
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
        after_sequence: int | None = None,
        amqp_nodes: Sequence[str] = (),
    ) -> None:
        self.queue_wait_seconds = queue_wait_seconds
        # What to report of a delivery after `received`, in order (e.g. contact_made, then closed with an
        # outcome; or returned with a reason): how a recipient's system answers the platform.
        self.answer = answer or (lambda _delivery: [])
        self.amqp_url, self.org_id, self.routing_url, self.token = amqp_url, org_id, routing_url, token
        self.amqp_urls = node_urls(amqp_url, amqp_nodes)  # a cluster's nodes, the next when one is lost
        self.show = show
        self.report_attempts = report_attempts
        self.seen: set[str] = set()  # a real recipient keeps these with the melding, durably
        self.held: dict[str, dict[str, Any]] = {}
        self.retracted: set[str] = set()  # delivery ids; durably, like `seen`
        # The last number up to which every message was handled (None: the first message sets where we
        # start), and the numbers handled beyond it. Durably too, in a real recipient.
        self.last_sequence = after_sequence
        self.beyond: set[int] = set()
        self._filling = asyncio.Lock()  # one gap fetch at a time
        self.handling = 0  # messages taken from the queue and not yet handled to the end (answered, followed)
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
                    await self.retry_gap(http)
                with contextlib.suppress(Exception):  # bounded: on a broker that is gone it would wait for it
                    await asyncio.wait_for(queue.cancel(tag), timeout=5)
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
                    connection = await connect_failover(self.amqp_urls)
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
        self.handling += 1
        try:
            await self._handle(message, http)
        finally:
            self.handling -= 1

    async def _handle(self, message: AbstractIncomingMessage, http: httpx.AsyncClient) -> None:
        body = json.loads(message.body)
        try:
            kept = await self.take(message.message_id or "", message.type or "", body, http)
        except _TryAgain:  # a thin delivery's content could not be fetched now: the queue offers it again
            await asyncio.sleep(1.0)
            await message.nack(requeue=True)
            return
        await message.ack()
        if kept is not None:
            await self.answer_delivery(http, kept)
        await self.follow(body.get("sequence"), http)

    async def take(
        self, message_id: str, message_type: str, body: dict[str, Any], http: httpx.AsyncClient
    ) -> dict[str, Any] | None:
        """Keep what a message says (once per message_id). Returns a delivery that was kept, to answer."""
        if message_id in self.seen:
            self.show("duplicate", {"message_id": message_id})
            return None
        # Taken now, before anything is awaited: messages are handled concurrently, and the same message may
        # come from the queue and from a gap's fetch at once.
        self.seen.add(message_id)
        kept = None
        if message_type == "melding.delivered" and "href" in body and "patient" not in body:
            try:
                body = await self.fetch(http, body)  # thin: the content is fetched with the organisation's token
            except _TryAgain:
                self.seen.discard(message_id)
                raise
        overtaken = message_type == "melding.delivered" and body["delivery_id"] in self.retracted
        if message_type == "melding.retracted":
            self.retracted.add(body["delivery_id"])
            self.held.pop(body["melding_id"], None)
            self.show("retracted", body)
        elif message_type == "melding.reminder":  # contact is overdue: a person should act on it
            self.show("reminder", body)
        elif message_type != "melding.delivered":  # a type this version does not know: ack it, ignore it
            self.show("ignored", {"type": message_type, "message_id": message_id})
        elif overtaken or body.get("status") == "retracted":  # the consent was withdrawn: nothing is kept
            self.retracted.add(body["delivery_id"])
            self.show("dropped-retracted", {"delivery_id": body["delivery_id"], "melding_id": body["melding_id"]})
        else:
            kept = self.held[body["melding_id"]] = body
            self.show("delivered", body)
        return kept

    async def answer_delivery(self, http: httpx.AsyncClient, delivery: dict[str, Any]) -> None:
        for answer in [{"status": "received"}, *self.answer(delivery)]:
            if not await self.report(http, delivery["delivery_id"], answer):
                break

    async def fetch(self, http: httpx.AsyncClient, thin: dict[str, Any]) -> dict[str, Any]:
        """A thin delivery's content from its `href` (audited there as a read)."""
        try:
            response = await http.get(thin["href"])
        except httpx.TransportError:
            raise _TryAgain from None
        if response.status_code != 200:
            raise _TryAgain
        return {**response.json(), "sequence": thin.get("sequence")}

    async def follow(self, sequence: int | None, http: httpx.AsyncClient) -> None:
        """Note a message's number; on a gap below it, fetch what is missing (once: what comes later of it
        is dropped as a duplicate)."""
        if sequence is None:  # a platform before v1.1
            return
        if self.last_sequence is None:
            self.last_sequence = sequence - 1  # where this recipient starts
        self._handled(sequence)
        if self.beyond:  # numbers above one not seen: a gap
            async with self._filling:
                if self.beyond:  # still (a fetch that just ended may have filled it)
                    await self.fill_gap(http)

    async def retry_gap(self, http: httpx.AsyncClient) -> None:
        """A gap whose fetch failed is tried again (every second, by `run`): no later message may come to retry
        it, and a recipient that waits for one keeps its gap."""
        if self.beyond and not self._filling.locked():
            async with self._filling:
                if self.beyond:  # still: the lock may have been waited for, and a fetch meanwhile filled it
                    await self.fill_gap(http)

    def _handled(self, sequence: int) -> None:
        assert self.last_sequence is not None
        if sequence > self.last_sequence:
            self.beyond.add(sequence)
        while self.last_sequence + 1 in self.beyond:
            self.last_sequence += 1
            self.beyond.discard(self.last_sequence)

    async def fill_gap(self, http: httpx.AsyncClient) -> None:
        assert self.last_sequence is not None
        if not self.beyond:
            return  # nothing missing (any more)
        self.show("gap", {"after_sequence": self.last_sequence, "seen_up_to": max(self.beyond)})
        try:
            response = await http.get("/v1/deliveries/messages", params={"after_sequence": self.last_sequence})
        except httpx.TransportError:
            return  # the next message tries again
        if response.status_code != 200:
            return
        for item in response.json()["items"]:
            message_id, message_type = item.pop("message_id"), item.pop("type")
            if message_id not in self.seen:
                try:
                    kept = await self.take(message_id, message_type, item, http)
                except _TryAgain:
                    return  # a thin delivery not fetched now: the next message tries again
                if kept is not None:
                    await self.answer_delivery(http, kept)
            self._handled(item["sequence"])

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
