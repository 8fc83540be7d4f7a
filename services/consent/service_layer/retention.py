"""Purpose-bound retention of the consent service: a consent is kept as long as the meldingen sent under
it could be (its validity plus the melding retention) plus the audit period — or, once withdrawn, the
audit period after its withdrawal — so that every audited access can still be tied to the consent that
allowed it. Then the record goes.
"""

from __future__ import annotations

from datetime import timedelta

from services.consent.service_layer.ports import TransactionFactory
from shared.audit import AUDIT_RETENTION
from shared.clock import now, today_nl
from shared.settings import ServiceSettings


async def purge(
    unit_of_work: TransactionFactory, settings: ServiceSettings, *, dry_run: bool = False
) -> dict[str, int]:
    kept = timedelta(days=settings.personal_data_retention_days) + AUDIT_RETENTION
    withdrawn_before, valid_before = now() - AUDIT_RETENTION, today_nl() - kept
    async with unit_of_work() as uow:
        if dry_run:
            count = await uow.consents.count_past_retention(
                withdrawn_before=withdrawn_before, valid_before=valid_before
            )
            return {"consents": count}
        removed = await uow.consents.delete_past_retention(withdrawn_before=withdrawn_before, valid_before=valid_before)
        await uow.commit()
    return {"consents": removed}
