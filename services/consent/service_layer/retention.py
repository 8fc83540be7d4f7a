"""Purpose-bound retention of the consent service: a consent is kept as long as the meldingen sent under
it could be (its validity plus the melding retention) plus the audit period — or, once withdrawn, the
audit period after its withdrawal — so that every audited access can still be tied to the consent that
allowed it. Then the record goes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select

from services.consent.adapters.orm import consents
from shared.audit import AUDIT_RETENTION
from shared.clock import now, today_nl
from shared.db import Database
from shared.settings import ServiceSettings


def _due(settings: ServiceSettings) -> Any:
    kept = timedelta(days=settings.personal_data_retention_days) + AUDIT_RETENTION
    return or_(consents.c.withdrawn_at < now() - AUDIT_RETENTION, consents.c.valid_until < today_nl() - kept)


async def purge(database: Database, settings: ServiceSettings, *, dry_run: bool = False) -> dict[str, int]:
    async with database.unit_of_work() as uow:
        if dry_run:
            count = await uow.session.execute(select(func.count()).select_from(consents).where(_due(settings)))
            return {"consents": count.scalar_one()}
        removed = getattr(await uow.session.execute(delete(consents).where(_due(settings))), "rowcount", 0)
        await uow.commit()
    return {"consents": removed or 0}
