"""Sample data every kind of test shares (unit, integration, end to end): plain values, no I/O, nothing that
starts a process or opens a connection."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.clock import today_nl

BSN = "999999990"
SENDER = "10000001"


def melding_body(consent_id: str, bsn: str = BSN, **overrides: Any) -> dict[str, Any]:
    """A melding as a sender's EHR posts it: one patient, a due date 160 days ahead, two risk domains."""
    body: dict[str, Any] = {
        "consent_id": consent_id,
        "patient": {
            "bsn": bsn,
            "name": {"given": "Sanne", "family": "de Vries"},
            "birth_date": "1998-03-14",
            "address": {"postcode": "1011 ab", "house_number": "12", "house_number_suffix": "A", "city": "Amsterdam"},
            "phone": "0612345678",
        },
        "pregnancy": {"expected_due_date": (today_nl() + timedelta(days=160)).isoformat()},
        "risk_domains": ["verslaving", "financien-schulden"],
        "recipient_types": ["jgz", "wijkteam"],
        "urgency": "regular",
        "note": "Cliënte gebruikt methadon; schulden bij meerdere schuldeisers.",
        "contact": {"name": "M. Jansen, verloskundige", "phone": "0201234567"},
    }
    body.update(overrides)
    return body
