"""What the sender reads of a melding: its record, deliveries and history as one document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.melding.domain.model import Delivery, HistoryEntry, MeldingRecord, bsn_in


@dataclass(frozen=True)
class MeldingView:
    record: MeldingRecord
    deliveries: list[Delivery]
    history: list[HistoryEntry]

    @property
    def bsn(self) -> str | None:
        return bsn_in(self.record.content)

    def document(self) -> dict[str, Any]:
        """The melding as `GET /v1/meldingen/{id}` shows it. Once its personal data is removed only the
        anonymous skeleton is left: no patient, contact or note."""
        r = self.record
        return {
            "id": r.id,
            "status": r.status.value,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "consent_id": r.consent_id,
            "patient": None,
            "note": None,
            "contact": None,
            **(r.content if r.content is not None else r.skeleton or {}),
            "purged_at": r.purged_at,
            "sender": {"org_id": r.sender.org_id, "org_type": r.sender.org_type, "sub": r.sender.sub},
            "gemeente": {"code": r.gemeente.code, "name": r.gemeente.name} if r.gemeente else None,
            "unroutable_types": list(r.unroutable_types),
            "skipped_types": [{"recipient_type": s.recipient_type, "reason": s.reason} for s in r.skipped_types],
            "not_delivered_reason": r.not_delivered_reason,
            "deliveries": [
                {
                    "delivery_id": d.delivery_id,
                    "org_id": d.org_id,
                    "org_name": d.org_name,
                    "recipient_type": d.recipient_type,
                    "status": d.status.value,
                    "risk_domains": list(d.risk_domains),
                    "contact_due_at": d.contact_due_at,
                    "overdue": d.overdue,
                    "contact_at": d.contact_at,
                    "outcome": d.outcome,
                    "returned_reason": d.returned_reason,
                    "updated_at": d.updated_at,
                }
                for d in self.deliveries
            ],
            "history": [{"at": h.at, "event": h.event, "detail": h.detail} for h in self.history],
        }
