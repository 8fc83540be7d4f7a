"""Purpose-bound retention of the melding service: a melding's personal data goes once its purpose is over.

A withdrawn melding's at once; any other's `personal_data_retention_days` after its expected due date
(the programme's help starts around birth; 12 months by default). What stays is an anonymous skeleton —
dates, gemeente, risk domains, recipient types, statuses — for the programme's monitoring.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from services.melding.service_layer.handlers import remove_personal_data
from services.melding.service_layer.ports import MeldingTransaction, TransactionFactory
from shared.clock import today_nl
from shared.retention import purge_due
from shared.settings import ServiceSettings


def _cutoff(settings: ServiceSettings) -> date:
    return today_nl() - timedelta(days=settings.personal_data_retention_days)


async def purge(
    unit_of_work: TransactionFactory, settings: ServiceSettings, *, dry_run: bool = False
) -> dict[str, int]:
    """Remove the personal data that is due; with `dry_run`, only count it. Returns counts per kind."""
    cutoff = _cutoff(settings)
    if dry_run:
        async with unit_of_work() as uow:
            return {"meldingen (personal data)": await uow.meldingen.count_personal_data_due(cutoff)}

    async def lock_due(uow: MeldingTransaction, batch: int) -> list[str]:
        return await uow.meldingen.lock_personal_data_due(cutoff, batch)

    async def remove(uow: MeldingTransaction, melding_id: str, at: datetime) -> None:
        await remove_personal_data(uow, melding_id, at, why="retention", outcome="purged", request_id=None)

    return {"meldingen (personal data)": await purge_due(unit_of_work, lock_due, remove)}
