"""A reference recipient (`kansrijk consume`): what a JGZ organisation's or wijkteam's consumer must do.

Take each message from the organisation's queue, drop duplicates by `message_id` (delivery is
at-least-once), keep the melding (here: show it), ack, and report `received` to the routing service.
On `melding.retracted`, delete what is held of that melding.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from shared.messaging.topology import DELIVERIES_EXCHANGE, declare_topology, declare_quorum_queue


class ReferenceRecipient:
    def __init__(self, *, amqp_url: str, org_id: str, routing_url: str, token: str,
                 show: Callable[[str, dict[str, Any]], None]) -> None:
        self.amqp_url, self.org_id, self.routing_url, self.token = amqp_url, org_id, routing_url, token
        self.show = show
        self.seen: set[str] = set()  # a real recipient keeps these with the melding, durably
        self.held: dict[str, dict[str, Any]] = {}

    async def run(self, *, count: int | None = None, idle_timeout: float | None = None) -> int:
        """Consume until `count` messages were handled (or idle for `idle_timeout` s, or forever)."""
        connection = await aio_pika.connect_robust(self.amqp_url)
        handled = 0
        done = asyncio.Event()
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=10)
            await declare_topology(channel)
            queue = await declare_quorum_queue(channel, f"kansrijk.deliveries.{self.org_id}",
                                               exchange=DELIVERIES_EXCHANGE, routing_keys=[self.org_id])
            async with httpx.AsyncClient(base_url=self.routing_url, timeout=10,
                                         headers={"Authorization": f"Bearer {self.token}"}) as http:
                async with queue.iterator() as messages:
                    while not done.is_set():
                        try:
                            message = await asyncio.wait_for(messages.__anext__(), timeout=idle_timeout)
                        except TimeoutError:
                            break
                        await self.handle(message, http)
                        handled += 1
                        if count is not None and handled >= count:
                            done.set()
        finally:
            await connection.close()
        return handled

    async def handle(self, message: AbstractIncomingMessage, http: httpx.AsyncClient) -> None:
        message_id = message.message_id or ""
        if message_id in self.seen:
            self.show("duplicate", {"message_id": message_id})
            await message.ack()
            return
        body = json.loads(message.body)
        if message.type == "melding.retracted":
            self.held.pop(body["melding_id"], None)
            self.show("retracted", body)
        else:
            self.held[body["melding_id"]] = body
            self.show("delivered", body)
        self.seen.add(message_id)
        await message.ack()
        if message.type == "melding.delivered":
            await self.report_received(http, body["delivery_id"])

    async def report_received(self, http: httpx.AsyncClient, delivery_id: str) -> None:
        """Best effort: the melding is kept whatever happens here; a recipient can report again later."""
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(4), wait=wait_exponential(0.2, max=2),
                                               retry=retry_if_exception_type(httpx.TransportError), reraise=True):
                with attempt:
                    response = await http.post(f"/v1/deliveries/{delivery_id}/status", json={"status": "received"})
        except httpx.TransportError:
            self.show("status_failed", {"delivery_id": delivery_id, "status": "routing service unreachable"})
            return
        if response.status_code not in (200, 409):
            self.show("status_failed", {"delivery_id": delivery_id, "status": response.status_code})
        else:
            self.show("reported", {"delivery_id": delivery_id, "status": "received"})
