"""What the woman herself sees of a melding about her (her own view). No I/O here.

She sees who sent it and when, its status, and for each recipient organisation its name, its status, the
risk domains and the note it received, the contact date and the outcome. A cancelled or withdrawn melding
shows that it was, and nothing of its content (which is removed at once); nor does one whose personal data
is gone after the retention period. Internal names of people (the sender's `sub`) are not hers to see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from services.melding.domain.model import Delivery, MeldingRecord, MeldingStatus

WITHOUT_CONTENT = frozenset({MeldingStatus.cancelled, MeldingStatus.withdrawn})


@dataclass(frozen=True)
class RecipientSeen:
    org_id: str
    org_name: str
    recipient_type: str
    status: str
    risk_domains: tuple[str, ...]  # empty when the content is not shown
    note: str | None
    contact_at: date | None
    outcome: str | None


@dataclass(frozen=True)
class MeldingSeen:
    id: str
    sent_at: datetime
    sender_org_id: str
    sender_org_type: str
    status: str
    content_shown: bool
    risk_domains: tuple[str, ...]
    recipients: tuple[RecipientSeen, ...]

    @property
    def sender(self) -> dict[str, str]:
        """The sending organisation as she reads it: its id and type."""
        return {"org_id": self.sender_org_id, "org_type": self.sender_org_type}


def what_she_sees(record: MeldingRecord, deliveries: list[Delivery]) -> MeldingSeen:
    """A melding as the woman it is about sees it."""
    content: dict[str, Any] | None = record.content
    shown = content is not None and record.status not in WITHOUT_CONTENT
    note = (content or {}).get("note") if shown else None
    return MeldingSeen(
        id=record.id,
        sent_at=record.created_at,
        sender_org_id=record.sender.org_id,
        sender_org_type=record.sender.org_type,
        status=record.status.value,
        content_shown=shown,
        risk_domains=tuple((content or {}).get("risk_domains") or ()) if shown else (),
        recipients=tuple(
            RecipientSeen(
                org_id=d.org_id,
                org_name=d.org_name,
                recipient_type=d.recipient_type,
                status=d.status.value,
                risk_domains=tuple(d.risk_domains) if shown else (),
                note=note,
                contact_at=d.contact_at if shown else None,
                outcome=d.outcome if shown else None,
            )
            for d in deliveries
        ),
    )
