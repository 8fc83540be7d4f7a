"""Purpose-bound retention of the melding service: a melding's personal data goes once its purpose is over.

A withdrawn melding's at once; any other's `personal_data_retention_days` after its expected due date
(the programme's help starts around birth; 12 months by default). What stays is an anonymous skeleton —
dates, gemeente, risk domains, recipient types, statuses — for the programme's monitoring.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select

from services.melding.adapters.orm import audit, meldingen
from services.melding.adapters.repository import MeldingRepository
from shared.audit import record_access
from shared.auth import PLATFORM
from shared.clock import now, today_nl
from shared.db import Database
from shared.settings import ServiceSettings

BATCH = 200


def _due(settings: ServiceSettings) -> Any:
    cutoff = today_nl() - timedelta(days=settings.personal_data_retention_days)
    return (
        meldingen.c.purged_at.is_(None),
        meldingen.c.content.is_not(None),
        or_(meldingen.c.withdrawn_at.is_not(None), meldingen.c.expected_due_date < cutoff),
    )


async def purge(database: Database, settings: ServiceSettings, *, dry_run: bool = False) -> dict[str, int]:
    """Remove the personal data that is due; with `dry_run`, only count it. Returns counts per kind."""
    if dry_run:
        async with database.unit_of_work() as uow:
            count = (await uow.session.execute(select(func.count()).where(*_due(settings)))).scalar_one()
        return {"meldingen (personal data)": count}
    purged = 0
    while True:
        async with database.unit_of_work() as uow:
            rows = list(
                await uow.session.execute(
                    select(meldingen.c.id, meldingen.c.content).where(*_due(settings)).limit(BATCH).with_for_update()
                )
            )
            at = now()
            for row in rows:
                bsn = await MeldingRepository(uow).purge(row.id, row.content, at, "personal data removed (retention)")
                record_access(
                    uow,
                    audit,
                    service="melding",
                    principal=PLATFORM,
                    action="update",
                    resource_type="melding",
                    resource_id=row.id,
                    patient_bsn=bsn,
                    request_id=None,
                    outcome="purged",
                )
            await uow.commit()
        purged += len(rows)
        if len(rows) < BATCH:
            return {"meldingen (personal data)": purged}
