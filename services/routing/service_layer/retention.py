"""Purpose-bound retention of the routing service (see the melding service's for the rule).

A routed melding's personal data (the accepted body, each delivery's message and status note) goes
`personal_data_retention_days` after the expected due date; a withdrawn or refused one's was removed
when its retraction was staged, and what little is left goes at the next round. Each delivery keeps
an anonymous document (ids, status, when its data was removed); replayed dead letters go after the
processed-message retention.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from services.routing.domain.model import RoutedMelding
from services.routing.service_layer.ports import FullRoutingTransaction, FullTransactionFactory
from shared.auth import PLATFORM
from shared.clock import now, today_nl
from shared.retention import purge_due
from shared.settings import ServiceSettings

MELDINGEN, DEAD_LETTERS = "routed meldingen (personal data)", "replayed dead letters"


def _limits(settings: ServiceSettings) -> tuple[date, datetime]:
    """The due-date cutoff of personal data, and the moment before which replayed dead letters go."""
    return (
        today_nl() - timedelta(days=settings.personal_data_retention_days),
        now() - timedelta(hours=settings.processed_retention_hours),
    )


async def purge(
    unit_of_work: FullTransactionFactory, settings: ServiceSettings, *, dry_run: bool = False
) -> dict[str, int]:
    """Remove the personal data that is due; with `dry_run`, only count it. Returns counts per kind."""
    cutoff, replayed_before = _limits(settings)
    if dry_run:
        async with unit_of_work() as uow:
            return {
                MELDINGEN: await uow.routing.count_personal_data_due(cutoff),
                DEAD_LETTERS: await uow.routing.count_replayed_dead_letters(before=replayed_before),
            }

    async def lock_due(uow: FullRoutingTransaction, batch: int) -> list[RoutedMelding]:
        return await uow.routing.lock_personal_data_due(cutoff, batch)

    async def remove(uow: FullRoutingTransaction, melding: RoutedMelding, at: datetime) -> None:
        await uow.routing.remove_personal_data(melding, at)
        bsn = melding.accepted.content.patient.bsn if melding.accepted else None
        uow.audit.record(
            PLATFORM, "update", "melding", melding.melding_id, patient_bsn=bsn, request_id=None, outcome="purged"
        )

    purged = await purge_due(unit_of_work, lock_due, remove)
    async with unit_of_work() as uow:
        letters = await uow.routing.delete_replayed_dead_letters(before=replayed_before)
        await uow.commit()
    return {MELDINGEN: purged, DEAD_LETTERS: letters}
