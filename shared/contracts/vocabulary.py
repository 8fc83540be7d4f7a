"""The words the services share: recipient types, why a consent refuses, and a delivery's statuses with
their one order.

A leaf: it imports nothing of the platform, so every layer of every service may speak it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

RecipientType = Literal["jgz", "wijkteam"]
# Who sends meldingen, and who receives them (an organisation's `org_type`).
SENDER_TYPES = ("huisarts", "verloskundige", "gynaecoloog", "volwassenen-ggz", "verslavingszorg")
RECIPIENT_TYPES = ("jgz", "wijkteam")

# The risk domains a signalling instrument (ALPHA-NL, R4U) covers; a melding carries one or more.
MEDICAL_RISK_DOMAINS = ("verslaving", "psychiatrie", "lvb", "medisch-obstetrisch")
SOCIAL_RISK_DOMAINS = (
    "huiselijk-geweld", "financien-schulden", "huisvesting", "sociaal-netwerk", "opvoeding-eerdere-kinderen",
    "jong-ouderschap", "ongeplande-zwangerschap", "overig",
)  # fmt: skip
RiskDomain = Literal[
    "verslaving",
    "psychiatrie",
    "lvb",
    "medisch-obstetrisch",
    "huiselijk-geweld",
    "financien-schulden",
    "huisvesting",
    "sociaal-netwerk",
    "opvoeding-eerdere-kinderen",
    "jong-ouderschap",
    "ongeplande-zwangerschap",
    "overig",
]
# What the professional explained before the patient consented (contract v1.1, consent scope and evidence):
# the purpose, the recipients, the data shared, how to withdraw, and the prenatal home visit (phb).
InformedAbout = Literal["purpose", "recipients", "data", "withdrawal", "phb"]


class CheckReason(StrEnum):
    """Why a consent does not allow a melding (`POST /v1/consents/check`)."""

    not_found = "not-found"
    other_patient = "other-patient"
    other_organisation = "other-organisation"
    withdrawn = "withdrawn"
    expired = "expired"
    out_of_scope = "out-of-scope"


class DeliveryStatus(StrEnum):
    """Where a delivery stands, in the one order it moves: forward only. `closed` and `returned` (the recipient
    sent it back before contact) end the recipient's part; `retracted` (the platform took it back) is final."""

    queued = "queued"
    received = "received"
    contact_made = "contact_made"
    closed = "closed"
    returned = "returned"
    retracted = "retracted"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    def later(self, other: DeliveryStatus) -> DeliveryStatus:
        """Of this status and `other`, the one further along (events about a delivery may come out of order)."""
        return other if other.rank > self.rank else self


_ORDER = list(DeliveryStatus)


# The recipient's answer (contract v1.1): why it sent a melding back, and what came of one it closed.
ReturnReason = Literal["wrong-recipient", "insufficient-information", "no-capacity"]
Outcome = Literal["phb-done", "support-started", "declined", "no-contact", "moved", "other"]
NOT_REPORTED = "not-reported"  # the outcome of a delivery closed without one (a v1 recipient)
CancelReason = Literal["pregnancy-ended", "sent-in-error", "patient-moved", "other"]
# How an organisation receives its deliveries (contract v1.1): the melding on its queue (`full`), or ids
# and an `href` to fetch it with its token (`thin`: no personal data in RabbitMQ).
DeliveryMode = Literal["full", "thin"]
