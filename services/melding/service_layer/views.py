"""What the sender reads of a melding: its record, deliveries and history as one typed read model.

The API's `MeldingRead` maps it by attribute (`response_model`), so the answer's shape is written once there and
each attribute here is type-checked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.melding.domain.model import (
    Delivery,
    HistoryEntry,
    MeldingRecord,
    MeldingStatus,
    SkippedRef,
    bsn_in,
)
from shared.contracts.melding import STORED, Contact, Gemeente, Patient, Pregnancy, Sender


@dataclass(frozen=True)
class MeldingView:
    """The melding as `GET /v1/meldingen/{id}` shows it. Once its personal data is removed only the
    anonymous skeleton is left: no patient, contact or note. Stored content is read with the stored rules
    (a due date long past still reads)."""

    record: MeldingRecord
    deliveries: list[Delivery]
    history: list[HistoryEntry]

    @property
    def bsn(self) -> str | None:
        return bsn_in(self.record.content)

    @property
    def _content(self) -> dict[str, Any]:
        r = self.record
        return r.content if r.content is not None else r.skeleton or {}

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def status(self) -> MeldingStatus:
        return self.record.status

    @property
    def created_at(self) -> datetime:
        return self.record.created_at

    @property
    def updated_at(self) -> datetime:
        return self.record.updated_at

    @property
    def consent_id(self) -> str:
        return self.record.consent_id

    @property
    def purged_at(self) -> datetime | None:
        return self.record.purged_at

    @property
    def patient(self) -> Patient | None:
        given = self._content.get("patient")
        return Patient.model_validate(given, context=STORED) if given is not None else None

    @property
    def pregnancy(self) -> Pregnancy:
        return Pregnancy.model_validate(self._content.get("pregnancy"), context=STORED)

    @property
    def risk_domains(self) -> list[str]:
        return list(self._content.get("risk_domains") or [])

    @property
    def recipient_types(self) -> list[str]:
        return list(self._content.get("recipient_types") or [])

    @property
    def urgency(self) -> str | None:
        urgency: str | None = self._content.get("urgency")
        return urgency

    @property
    def note(self) -> str | None:
        note: str | None = self._content.get("note")
        return note

    @property
    def contact(self) -> Contact | None:
        given = self._content.get("contact")
        return Contact.model_validate(given, context=STORED) if given is not None else None

    @property
    def sender(self) -> Sender:
        s = self.record.sender
        return Sender(org_id=s.org_id, org_type=s.org_type, sub=s.sub)

    @property
    def gemeente(self) -> Gemeente | None:
        g = self.record.gemeente
        return Gemeente(code=g.code, name=g.name) if g else None

    @property
    def unroutable_types(self) -> list[str]:
        return list(self.record.unroutable_types)

    @property
    def skipped_types(self) -> list[SkippedRef]:
        return list(self.record.skipped_types)

    @property
    def not_delivered_reason(self) -> str | None:
        return self.record.not_delivered_reason


@dataclass(frozen=True)
class MeldingViewPage:
    """One page of a sender's meldingen; `next_cursor` is None on the last."""

    items: list[MeldingView]
    next_cursor: str | None
