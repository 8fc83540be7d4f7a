"""Purpose-bound retention of the routing service (see the melding service's for the rule).

A routed melding's personal data (the accepted body, each delivery's message and status note) goes
`personal_data_retention_days` after the expected due date; a withdrawn or refused one's was removed
when its retraction was staged, and what little is left goes at the next round. Each delivery keeps
an anonymous document (ids, status, when its data was removed); replayed dead letters go after the
processed-message retention.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update

from services.routing.adapters.orm import audit, dead_letters, deliveries, routed_meldingen
from services.routing.service_layer.routing import parse_accepted
from shared.audit import record_access
from shared.auth import PLATFORM
from shared.clock import now, today_nl
from shared.db import Database
from shared.settings import ServiceSettings

BATCH = 200


def _due(settings: ServiceSettings) -> Any:
    cutoff = today_nl() - timedelta(days=settings.personal_data_retention_days)
    return (
        routed_meldingen.c.purged_at.is_(None),
        or_(routed_meldingen.c.status.in_(("withdrawn", "refused")), routed_meldingen.c.expected_due_date < cutoff),
    )


def _old_dead_letters(settings: ServiceSettings) -> Any:
    return and_(
        dead_letters.c.replayed_at.is_not(None),
        dead_letters.c.replayed_at < now() - timedelta(hours=settings.processed_retention_hours),
    )


async def purge(database: Database, settings: ServiceSettings, *, dry_run: bool = False) -> dict[str, int]:
    """Remove the personal data that is due; with `dry_run`, only count it. Returns counts per kind."""
    if dry_run:
        async with database.unit_of_work() as uow:
            count = (await uow.session.execute(select(func.count()).where(*_due(settings)))).scalar_one()
            letters = (
                await uow.session.execute(
                    select(func.count()).select_from(dead_letters).where(_old_dead_letters(settings))
                )
            ).scalar_one()
        return {"routed meldingen (personal data)": count, "replayed dead letters": letters}
    purged = 0
    while True:
        async with database.unit_of_work() as uow:
            rows = list(
                await uow.session.execute(
                    select(routed_meldingen.c.melding_id, routed_meldingen.c.accepted)
                    .where(*_due(settings))
                    .limit(BATCH)
                    .with_for_update()
                )
            )
            at = now()
            for row in rows:
                bsn = parse_accepted(row.accepted).content.patient.bsn if row.accepted else None
                await uow.session.execute(
                    update(routed_meldingen)
                    .where(routed_meldingen.c.melding_id == row.melding_id)
                    .values(accepted=None, purged_at=at)
                )
                for delivery in await uow.session.execute(
                    select(deliveries.c.delivery_id, deliveries.c.status).where(
                        deliveries.c.melding_id == row.melding_id
                    )
                ):
                    if delivery.status == "retracted":  # its message is the retraction: nothing personal
                        continue
                    document = {
                        "delivery_id": delivery.delivery_id,
                        "melding_id": row.melding_id,
                        "purged_at": at.isoformat(),
                    }
                    await uow.session.execute(
                        update(deliveries)
                        .where(deliveries.c.delivery_id == delivery.delivery_id)
                        .values(message=json.dumps(document), status_note=None)
                    )
                record_access(
                    uow,
                    audit,
                    service="routing",
                    principal=PLATFORM,
                    action="update",
                    resource_type="melding",
                    resource_id=row.melding_id,
                    patient_bsn=bsn,
                    request_id=None,
                    outcome="purged",
                )
            await uow.commit()
        purged += len(rows)
        if len(rows) < BATCH:
            break
    async with database.unit_of_work() as uow:
        removed = await uow.session.execute(delete(dead_letters).where(_old_dead_letters(settings)))
        letters = getattr(removed, "rowcount", 0)
        await uow.commit()
    return {"routed meldingen (personal data)": purged, "replayed dead letters": letters or 0}
