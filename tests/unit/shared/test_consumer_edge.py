"""A consumer's edge (shared.messaging.consumer): each message decoded once into its contract's model, and
one that cannot be — no id, not JSON, not its contract — dead-lettered at once, before any transaction."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.contracts.events import CONSENT_WITHDRAWN, ConsentWithdrawn
from shared.contracts.melding import MELDING_ROUTED
from shared.contracts.subscriptions import EventQueue
from shared.messaging.consumer import IdempotentConsumer, IncomingEvent


@dataclass
class Message:
    """What the consumer reads of an aio-pika message, and what it did with it."""

    body: bytes
    type: str = CONSENT_WITHDRAWN
    message_id: str | None = field(default_factory=lambda: str(uuid.uuid4()))
    routing_key: str | None = None
    correlation_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False
    settled: list[str] = field(default_factory=list)

    async def reject(self, requeue: bool = False) -> None:
        self.settled.append(f"reject(requeue={requeue})")

    async def ack(self, multiple: bool = False) -> None:
        self.settled.append("ack")

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        self.settled.append("nack")


applied: list[IncomingEvent[Any]] = []


async def handler(uow: Any, event: IncomingEvent[Any]) -> None:
    applied.append(event)


def opened() -> Any:
    raise AssertionError("no transaction may be opened for a message that does not decode")


def consumer() -> IdempotentConsumer[Any]:
    return IdempotentConsumer(
        opened,
        None,  # type: ignore[arg-type]  # no broker: what does not decode is settled on the message itself
        None,  # type: ignore[arg-type]  # no processed-messages table: no transaction is opened
        name="test",
        queue=EventQueue("kansrijk.test.edge", (CONSENT_WITHDRAWN,)),
        handlers={CONSENT_WITHDRAWN: handler},
    )


WITHDRAWN = {"consent_id": "c-1", "org_id": "10000001", "withdrawn_at": datetime(2026, 12, 1, tzinfo=UTC).isoformat()}


def test_a_message_is_decoded_once_into_its_contracts_model() -> None:
    message = Message(json.dumps(WITHDRAWN).encode(), headers={"x-request-id": b"ehr-1"})
    event = consumer()._decode(message)  # type: ignore[arg-type]  # Message stands in for aio-pika's
    assert isinstance(event.message, ConsentWithdrawn) and event.message.consent_id == "c-1"
    assert (event.type, event.request_id, event.message_id) == (CONSENT_WITHDRAWN, "ehr-1", message.message_id)


@pytest.mark.parametrize(
    "message",
    [
        Message(json.dumps(WITHDRAWN).encode(), message_id=None),
        Message(b"not json"),
        Message(b"[1, 2]"),
        Message(json.dumps({**WITHDRAWN, "consent_id": {"bsn": "999999990"}}).encode()),  # not the contract
        Message(json.dumps({}).encode(), type=MELDING_ROUTED),  # a type this consumer does not handle
    ],
    ids=["no-id", "not-json", "not-an-object", "invalid", "unhandled-type"],
)
async def test_a_message_that_does_not_decode_is_dead_lettered_at_once_without_a_transaction(
    message: Message, caplog: pytest.LogCaptureFixture
) -> None:
    applied.clear()
    await consumer().handle([message])  # type: ignore[list-item]
    assert message.settled == ["reject(requeue=False)"] and not applied
    assert "999999990" not in caplog.text  # a validation error quotes values: only its type is logged


def test_a_handled_type_without_a_contract_does_not_start() -> None:
    with pytest.raises(ValueError, match="no contract"):
        IdempotentConsumer(
            opened,
            None,  # type: ignore[arg-type]  # no broker: it refuses to start before it connects
            None,  # type: ignore[arg-type]  # no processed-messages table: nothing is read
            name="test",
            queue=EventQueue("kansrijk.test.edge", ("test.happened",)),
            handlers={"test.happened": handler},
        )
