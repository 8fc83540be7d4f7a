"""The melding service's event handlers on the run's real database, set-based: the statements a batch of
routing's reports costs do not grow with the batch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.melding.service_layer import handlers
from services.melding.service_layer.unit_of_work import unit_of_work_factory
from shared.contracts.melding import STORED
from shared.contracts.subscriptions import EVENT_CONTRACTS
from shared.contracts.vocabulary import DeliveryStatus
from shared.db import Database
from shared.messaging.consumer import IncomingEvent
from tests.integration.melding.test_repository import _add
from tests.support import counted_statements


def _event(message_type: str, body: dict[str, Any], n: int) -> IncomingEvent[Any]:
    message = EVENT_CONTRACTS[message_type].model_validate(body, context=STORED)
    return IncomingEvent(message_id=f"{message_type}-{n}", type=message_type, message=message)


def _delivery(melding_id: str) -> dict[str, str]:
    return {"delivery_id": f"d-{melding_id}", "org_id": "87654321", "org_name": "GGD JGZ", "recipient_type": "jgz"}


def _routed(melding_id: str, n: int) -> IncomingEvent[Any]:
    body = {"melding_id": melding_id, "gemeente": None, "deliveries": [_delivery(melding_id)], "unroutable_types": []}
    return _event("melding.routed", body, n)


def _received(melding_id: str, n: int) -> IncomingEvent[Any]:
    at = datetime.now(UTC).isoformat()
    body = {"melding_id": melding_id, "delivery": _delivery(melding_id), "status": "received", "at": at}
    return _event("delivery.status_changed", body, n)


async def test_a_batch_of_reports_costs_the_statements_of_one(rolled_back_melding: Database) -> None:
    unit_of_work = unit_of_work_factory(rolled_back_melding)
    ids = [f"m-{n}" for n in range(7)]
    async with unit_of_work() as uow:
        for melding_id in ids:
            await _add(uow, melding_id)
        await uow.commit()
    handled = (
        ("routed", handlers.on_meldingen_routed, _routed),
        ("received", handlers.on_delivery_statuses_changed, _received),
    )
    for what, handler, make in handled:
        counts = []
        for batch in (ids[:1], ids[1:]):  # one melding, then six
            with counted_statements(rolled_back_melding) as seen:
                async with unit_of_work() as uow:
                    await handler(uow, [make(melding_id, n) for n, melding_id in enumerate(batch)])
                    await uow.commit()
            counts.append(len(seen))
        assert counts[0] > 5 and counts[0] == counts[1], (what, counts)
    async with unit_of_work() as uow:
        states = await uow.meldingen.lock_all(ids)
    assert {m.id: m.deliveries for m in states.values()} == {i: {f"d-{i}": DeliveryStatus.received} for i in ids}
