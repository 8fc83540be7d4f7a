"""Events on `kansrijk.events`: the routing key is the event's type. Bodies carry ids, not personal data."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

CONSENT_WITHDRAWN = "consent.withdrawn"


class ConsentWithdrawn(BaseModel):
    """A patient withdrew a consent: nothing more goes out under it, and what went out is retracted."""

    consent_id: str
    org_id: str
    withdrawn_at: datetime
