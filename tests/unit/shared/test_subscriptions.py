"""Each service's consumer handles exactly what its queue in shared.contracts.subscriptions is bound to."""

from __future__ import annotations

from typing import Any

import pytest

from shared.contracts.subscriptions import SUBSCRIPTIONS, EventQueue
from shared.messaging.consumer import IdempotentConsumer


async def _handler(uow: Any, event: Any) -> None:
    return None


def test_a_consumer_without_a_handler_for_a_bound_type_does_not_start() -> None:
    queue = EventQueue("kansrijk.test.events", ("a.happened", "b.happened"))
    with pytest.raises(ValueError, match=r"no handler for b\.happened"):
        IdempotentConsumer(lambda: None, None, None, name="test", queue=queue, handlers={"a.happened": _handler})  # type: ignore[arg-type]  # nothing that connects: it refuses first


def test_every_services_consumer_matches_its_subscription() -> None:
    from services.melding.worker import consents_consumer
    from services.melding.worker import consumer as melding_consumer
    from services.routing.worker import consumer as routing_consumer
    from services.routing.worker import withdrawals_consumer

    class Runtime:  # what the consumers read of a runtime, and nothing that connects
        unit_of_work = broker = metrics = consent = tracer = database = None

        class settings:
            consent_recheck_after_seconds, consent_feed_max_lag_seconds = 30.0, 2.0
            consumer_batch_size, consumer_batch_wait_ms, consumer_view_batch_wait_ms = 50, 5.0, 50.0

    factories = (melding_consumer, consents_consumer, routing_consumer, withdrawals_consumer)
    consumers = [factory(Runtime()) for factory in factories]  # type: ignore[arg-type]  # a stand-in runtime
    # Only the consumer that keeps the senders' view waits for a fuller batch: routing's and the consent feed's
    # are on a melding's way to its recipient, or on a withdrawal's.
    assert [c.batch_wait for c in consumers] == [0.05, 0.005, 0.005, 0.005]
    assert sorted(c.queue.name for c in consumers) == sorted(q.name for q in SUBSCRIPTIONS)
    for consumer in consumers:
        assert set(consumer.queue.event_types) <= set(consumer.handlers)
        assert set(consumer.handlers) <= set(consumer.contracts)  # each type decoded once, at the edge
