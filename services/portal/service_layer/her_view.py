"""What she asks the portal for: each use case reads the services with her token and shapes the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.portal.adapters.platform import Platform
from services.portal.domain.her_view import (
    AccessLog,
    ConsentRow,
    MeldingRow,
    access_log,
    consent_rows,
    melding_rows,
)


@dataclass(frozen=True)
class Consents:
    rows: list[ConsentRow]
    nothing_about_her: bool


async def her_consents(platform: Platform, patient_ref: str) -> Consents:
    consents = await platform.consents(patient_ref)
    return Consents(consent_rows(consents), nothing_about_her=not consents)


async def her_consent(platform: Platform, patient_ref: str, consent_id: str) -> ConsentRow | None:
    """One of her consents (None if it is not hers)."""
    for row in consent_rows(await platform.consents(patient_ref)):
        if row.id == consent_id:
            return row
    return None


async def her_meldingen(platform: Platform, patient_ref: str) -> list[MeldingRow]:
    return melding_rows(await platform.meldingen(patient_ref))


async def her_access_log(platform: Platform, patient_ref: str) -> AccessLog:
    records, complete = await platform.access_records(patient_ref)
    return access_log(records, await platform.meldingen(patient_ref), complete=complete)


async def withdraw(platform: Platform, patient_ref: str, consent_id: str) -> ConsentRow:
    """Her withdrawal: the consent service does it as for the care provider, recorded as hers."""
    (row,) = consent_rows([await platform.withdraw(patient_ref, consent_id)])
    return row


async def her_copy(platform: Platform, patient_ref: str) -> dict[str, Any]:
    """Everything the platform holds about her, as the services answer it (a copy: AVG art. 15(3) and 20)."""
    records, complete = await platform.access_records(patient_ref)
    return {
        "toestemmingen": await platform.consents(patient_ref),
        "meldingen": await platform.meldingen(patient_ref),
        "inzage": {"records": records, "complete": complete},
    }
