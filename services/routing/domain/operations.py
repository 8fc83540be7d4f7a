"""What an operator reads about meldingen that wait: who sent one back, and when. No I/O here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.routing.domain.model import Returned


@dataclass(frozen=True)
class ReturnedDelivery:
    """A delivery its recipient sent back: the organisation (its name as delivered to) and when. A returned
    delivery changes no more (every report on it is refused), so its last change is its return."""

    melding_id: str
    recipient_type: str
    org_id: str
    org_name: str
    returned_at: datetime


@dataclass(frozen=True)
class ReturnSeen:
    """One return of a melding as an operator sees it: by whom (id and name), why, when."""

    recipient_type: str
    org_id: str
    org_name: str | None
    reason: str
    returned_at: datetime | None


def returns_seen(returned: Sequence[Returned], deliveries: Sequence[ReturnedDelivery]) -> list[ReturnSeen]:
    """The melding's returns (in the order recorded) with the name and time of the returned delivery each
    was: an organisation that returned it twice (named again by an operator) returned two deliveries,
    matched in order. A return without its delivery (none found) keeps its name and time unknown."""
    left = sorted(deliveries, key=lambda d: d.returned_at)
    out = []
    for r in returned:
        match = next((d for d in left if d.recipient_type == r.recipient_type and d.org_id == r.org_id), None)
        if match is not None:
            left.remove(match)
        out.append(
            ReturnSeen(
                recipient_type=r.recipient_type,
                org_id=r.org_id,
                org_name=match.org_name if match else None,
                reason=r.reason,
                returned_at=match.returned_at if match else None,
            )
        )
    return out
