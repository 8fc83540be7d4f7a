"""What operators read: meldingen waiting for a recipient and deliveries past their contact deadline, with
the names of the gemeenten and organisations beside their codes (no personal data)."""

from __future__ import annotations

from services.routing.domain.operations import returns_seen
from services.routing.service_layer.ports import FullTransactionFactory
from services.routing.service_layer.views import OverdueView, UnroutableView


async def list_unroutable(unit_of_work: FullTransactionFactory, *, limit: int = 1000) -> list[UnroutableView]:
    """Meldingen waiting for a recipient, oldest first; a returned one with who returned it, why and when."""
    async with unit_of_work() as uow:
        waiting = await uow.routing.waiting(limit=limit)
        returned = await uow.routing.returned_deliveries([m.melding_id for m in waiting if m.returned])
        names = await uow.directory.gemeente_names({m.gemeente_code for m in waiting if m.gemeente_code})
    return [
        UnroutableView(
            melding_id=m.melding_id,
            gemeente_code=m.gemeente_code,
            gemeente_name=names.get(m.gemeente_code) if m.gemeente_code else None,
            requested_types=list(m.requested_types),
            unroutable_types=list(m.unroutable_types),
            returned=returns_seen(m.returned, [d for d in returned if d.melding_id == m.melding_id]),
            waiting_since=m.created_at,
        )
        for m in waiting
    ]


async def list_overdue(unit_of_work: FullTransactionFactory, *, limit: int = 1000) -> list[OverdueView]:
    """Deliveries past their contact deadline still without contact, oldest deadline first."""
    async with unit_of_work() as uow:
        found = await uow.routing.overdue(limit)
        names = await uow.directory.gemeente_names({code for _, code in found if code})
    return [
        OverdueView(
            delivery_id=d.delivery_id,
            melding_id=d.melding_id,
            org_id=d.org_id,
            org_name=d.org_name,
            recipient_type=d.recipient_type,
            gemeente_code=gemeente_code,
            gemeente_name=names.get(gemeente_code) if gemeente_code else None,
            contact_due_at=d.contact_due_at,
            status=d.status.value,
        )
        for d, gemeente_code in found
    ]
