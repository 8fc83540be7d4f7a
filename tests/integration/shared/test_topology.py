"""The topology as each version leaves it: declaring it again moves bindings an earlier version made."""

from __future__ import annotations

import aio_pika

from shared.messaging.topology import EVENTS_EXCHANGE, declare_quorum_queue, declare_topology
from tests.support import RunEnvironment, scratch_vhost


async def test_withdrawals_leave_the_routing_and_melding_events_queues_for_their_own(
    environment: RunEnvironment,
) -> None:
    async with scratch_vhost(environment, "topology") as amqp_url:
        connection = await aio_pika.connect_robust(amqp_url)
        try:
            channel = await connection.channel()
            # As the previous version declared it: withdrawals bound to routing's meldingen queue.
            await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
            await declare_quorum_queue(
                channel,
                "kansrijk.routing.events",
                exchange=EVENTS_EXCHANGE,
                routing_keys=["melding.accepted", "consent.withdrawn"],
            )
            await declare_quorum_queue(
                channel,
                "kansrijk.melding.events",
                exchange=EVENTS_EXCHANGE,
                routing_keys=["melding.routed", "consent.withdrawn"],
            )
            await declare_topology(channel)
            await declare_topology(channel)  # and again, as every service does when it starts: no error

            exchange = await channel.get_exchange(EVENTS_EXCHANGE)
            await exchange.publish(
                aio_pika.Message(b"{}", message_id="w1", delivery_mode=2), routing_key="consent.withdrawn"
            )
            await exchange.publish(
                aio_pika.Message(b"{}", message_id="a1", delivery_mode=2), routing_key="melding.accepted"
            )
            queues = {
                name: await channel.declare_queue(name, passive=True)
                for name in (
                    "kansrijk.routing.events",
                    "kansrijk.routing.withdrawals",
                    "kansrijk.melding.events",
                    "kansrijk.melding.consents",
                )
            }
            got = {}
            for name, queue in queues.items():
                message = await queue.get(fail=False, timeout=5)
                got[name] = message.message_id if message else None
                if message:
                    await message.ack()
                assert await queue.get(fail=False, timeout=5) is None, f"{name}: more than one message"
            assert got == {
                "kansrijk.routing.events": "a1",
                "kansrijk.routing.withdrawals": "w1",
                "kansrijk.melding.events": None,
                "kansrijk.melding.consents": "w1",
            }
        finally:
            await connection.close()
