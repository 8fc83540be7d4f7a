"""All SQL on consents; rows become `Consent` here, at the edge."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.consent.adapters.orm import consents
from services.consent.domain.model import Consent
from shared.crypto import FieldCipher


def _to_row(consent: Consent, bsn_ref: str) -> dict[str, Any]:
    return {
        "id": consent.id, "bsn": consent.bsn, "bsn_ref": bsn_ref, "recipient_types": ",".join(consent.recipient_types),
        "purpose": consent.purpose, "method": consent.method, "given_at": consent.given_at,
        "valid_until": consent.valid_until, "recorded_by_org_id": consent.recorded_by_org_id,
        "recorded_by_org_type": consent.recorded_by_org_type, "recorded_by_sub": consent.recorded_by_sub,
        "created_at": consent.created_at, "withdrawn_at": consent.withdrawn_at,
        "withdrawal_reason": consent.withdrawal_reason, "withdrawn_by": consent.withdrawn_by,
        "risk_domains": ",".join(consent.risk_domains) if consent.risk_domains is not None else None,
        "informed_about": ",".join(consent.informed_about),
    }  # fmt: skip


def _from_row(row: Any) -> Consent:
    values = dict(row._mapping)
    values["recipient_types"] = tuple(values["recipient_types"].split(","))
    values["risk_domains"] = tuple(values["risk_domains"].split(",")) if values["risk_domains"] is not None else None
    values["informed_about"] = tuple(t for t in values["informed_about"].split(",") if t)
    values.pop("bsn_ref")
    return Consent(**values)


class ConsentRepository:
    def __init__(self, session: AsyncSession, cipher: FieldCipher) -> None:
        self.session, self.cipher = session, cipher

    async def add(self, consent: Consent) -> None:
        await self.session.execute(consents.insert().values(**_to_row(consent, self.cipher.bsn_ref(consent.bsn))))

    async def get(self, consent_id: str) -> Consent | None:
        row = (await self.session.execute(select(consents).where(consents.c.id == consent_id))).first()
        return _from_row(row) if row is not None else None

    async def save_withdrawal(self, consent: Consent) -> None:
        await self.session.execute(
            update(consents)
            .where(consents.c.id == consent.id)
            .values(
                withdrawn_at=consent.withdrawn_at,
                withdrawal_reason=consent.withdrawal_reason,
                withdrawn_by=consent.withdrawn_by,
            )
        )

    async def for_patient(self, *, org_id: str, bsn: str) -> list[Consent]:
        query = (
            select(consents)
            .where(consents.c.recorded_by_org_id == org_id, consents.c.bsn_ref == self.cipher.bsn_ref(bsn))
            .order_by(consents.c.created_at.desc(), consents.c.id)
        )
        return [_from_row(row) for row in await self.session.execute(query)]

    async def of_patient(self, bsn_ref: str) -> list[Consent]:
        """Every consent recorded for one woman (by the keyed hash of her BSN), by any organisation."""
        query = (
            select(consents).where(consents.c.bsn_ref == bsn_ref).order_by(consents.c.created_at.desc(), consents.c.id)
        )
        return [_from_row(row) for row in await self.session.execute(query)]

    # --- retention --------------------------------------------------------------------------------------

    @staticmethod
    def _past_retention(withdrawn_before: datetime, valid_before: date) -> ColumnElement[bool]:
        return or_(consents.c.withdrawn_at < withdrawn_before, consents.c.valid_until < valid_before)

    async def count_past_retention(self, *, withdrawn_before: datetime, valid_before: date) -> int:
        """Consents withdrawn before `withdrawn_before` or valid only until before `valid_before`."""
        query = select(func.count()).select_from(consents).where(self._past_retention(withdrawn_before, valid_before))
        return int((await self.session.execute(query)).scalar_one())

    async def delete_past_retention(self, *, withdrawn_before: datetime, valid_before: date) -> int:
        deleted = await self.session.execute(
            delete(consents).where(self._past_retention(withdrawn_before, valid_before))
        )
        return int(getattr(deleted, "rowcount", 0) or 0)
