"""A dead letter becomes a typed command at the worker's edge; its key tells a redelivery from a new death."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aio_pika.message import IncomingMessage
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec
from pamqp.header import ContentHeader

from services.routing.domain.commands import KeepDeadLetter
from services.routing.worker import dead_letter

DIED = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


def death(count: int = 1, at: datetime = DIED) -> dict[str, Any]:
    """The headers RabbitMQ sets on a message a quorum queue dead-lettered past its delivery limit."""
    return {
        "x-death": [
            {
                "count": count,
                "reason": "delivery_limit",
                "queue": "routing.events",
                "time": at,
                "exchange": "kansrijk.events",
                "routing-keys": ["melding.accepted"],
            }
        ],
        "x-first-death-queue": "routing.events",
        "x-first-death-reason": "delivery_limit",
        "x-first-death-exchange": "kansrijk.events",
    }


def message(headers: dict[str, Any], *, message_id: str | None = "m-1", body: bytes = b'{"a": 1}') -> IncomingMessage:
    properties = spec.Basic.Properties(
        message_id=message_id, message_type="melding.accepted", correlation_id="c-1", headers=headers
    )
    delivered = DeliveredMessage(
        delivery=spec.Basic.Deliver(consumer_tag="t", delivery_tag=1, routing_key="kansrijk.dead-letters"),
        header=ContentHeader(body_size=len(body), properties=properties),
        body=body,
        channel=None,  # type: ignore[arg-type]  # never acked here
    )
    return IncomingMessage(delivered)


def test_the_worker_hands_the_service_layer_a_typed_command_with_where_and_why_it_died() -> None:
    command = dead_letter(message({**death(), "x-delivery-count": 1}))
    assert command == KeepDeadLetter(
        message_id="m-1",
        message_type="melding.accepted",
        correlation_id="c-1",
        body=b'{"a": 1}',
        queue="routing.events",
        reason="delivery_limit",
        death=command.death,
    )
    assert len(command.key) == 64  # fits processed_messages.message_id


def test_the_same_dead_letter_delivered_again_has_the_same_key() -> None:
    first = dead_letter(message(death()))
    again = dead_letter(message({**death(), "x-delivery-count": 2}))  # the dead-letter queue counts its own tries
    assert first.key == again.key


def test_the_same_message_dead_again_after_a_replay_has_another_key() -> None:
    first = dead_letter(message(death()))
    replayed_and_dead = dead_letter(message(death(at=datetime(2026, 12, 1, 11, 0, 0, tzinfo=UTC))))
    twice_in_a_row = dead_letter(message(death(count=2)))
    assert len({first.key, replayed_and_dead.key, twice_in_a_row.key}) == 3


def test_messages_without_an_id_are_told_apart_by_their_body() -> None:
    one = dead_letter(message(death(), message_id=None, body=b"not json"))
    other = dead_letter(message(death(), message_id=None, body=b"not json either"))
    assert one.key != other.key
    assert one.key == dead_letter(message(death(), message_id=None, body=b"not json")).key
