"""The sender's view of a melding: its status follows from what routing reported. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DELIVERY_ORDER = {"queued": 0, "received": 1, "contact_made": 2, "closed": 3, "retracted": 4}


class MeldingStatus(StrEnum):
    accepted = "accepted"
    delivered = "delivered"
    unroutable = "unroutable"
    withdrawn = "withdrawn"


def melding_status(*, withdrawn: bool, deliveries: int, routing_reported_unroutable: bool) -> MeldingStatus:
    """accepted -> delivered (a delivery exists) or unroutable (none possible yet); withdrawn overrides all."""
    if withdrawn:
        return MeldingStatus.withdrawn
    if deliveries:
        return MeldingStatus.delivered
    if routing_reported_unroutable:
        return MeldingStatus.unroutable
    return MeldingStatus.accepted


def later_delivery_status(current: str | None, reported: str) -> str:
    """Events may arrive out of order: a delivery's status only moves forward, and retracted is final."""
    if current is None:
        return reported
    return reported if DELIVERY_ORDER[reported] > DELIVERY_ORDER[current] else current


# What of a melding's content outlives its personal data: enough for the programme's figures, no person.
SKELETON_FIELDS = ("pregnancy", "risk_domains", "recipient_types", "urgency")


def skeleton_of(content: dict[str, Any]) -> dict[str, Any]:
    """The anonymous part of a melding's content, kept once its personal data is removed."""
    return {name: content.get(name) for name in SKELETON_FIELDS}


@dataclass(frozen=True)
class DeliveryView:
    delivery_id: str
    org_id: str
    org_name: str
    recipient_type: str
    status: str
