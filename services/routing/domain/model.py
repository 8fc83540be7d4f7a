"""Routing rules: which organisation serves an address, and how a delivery's status may move. No I/O here."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.contracts.melding import MeldingAccepted
from shared.contracts.vocabulary import NOT_REPORTED, DeliveryMode, DeliveryStatus
from shared.errors import Conflict, Forbidden, ValidationFailed


class RoutingStatus(StrEnum):
    """Where a melding stands in routing: `new` and `waiting` are still routed; the others are final."""

    new = "new"
    waiting = "waiting"  # a requested recipient type has no organisation yet
    routed = "routed"
    withdrawn = "withdrawn"
    not_delivered = "not_delivered"  # to no one: every type skipped by the route map, or the consent refused
    cancelled = "cancelled"  # the sender cancelled it
    refused = "refused"  # before v1.1: the consent no longer allowed it (now not_delivered)

    @property
    def routable(self) -> bool:
        return self in (RoutingStatus.new, RoutingStatus.waiting)


class SkipReason(StrEnum):
    route_map = "route-map"  # the coalition agreed this recipient type does not receive such meldingen


class NotDeliveredReason(StrEnum):
    route_map = "route-map"  # every requested type was skipped
    consent_expired = "consent-expired"  # the consent ran out before the melding's turn came
    consent_refused = "consent-refused"  # the consent service refused it for another reason at routing time


@dataclass(frozen=True)
class Returned:
    """A delivery its recipient sent back: which type, by whom, and why."""

    recipient_type: str
    org_id: str
    reason: str


def types_for_an_operator(returned: Iterable[Returned]) -> set[str]:
    """The types a recipient sent back: they wait for an operator to name an organisation, not for the
    directory (routing them again on a schedule would race the operator, and ask consent every round)."""
    return {r.recipient_type for r in returned}


@dataclass(frozen=True)
class Skipped:
    """A requested recipient type that gets nothing, and why."""

    recipient_type: str
    reason: SkipReason


@dataclass(frozen=True)
class Pc4Range:
    start: str  # "1011"
    end: str  # "1109", inclusive

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValidationFailed("postcode_ranges", "a range's `from` must not lie after its `to`")


URA_FORMAT = re.compile(r"^[0-9]{8}$")
WIJKTEAM_ID_FORMAT = re.compile(r"^wijkteam-[a-z0-9]+(-[a-z0-9]+)*$")


def check_organisation_id(org_id: str, org_type: str) -> None:
    """A recipient organisation is known by its URA (8 digits); a wijkteam without one (many are run by the
    gemeente, not a care provider) by `wijkteam-<name>` in lower-case letters, digits and hyphens."""
    if URA_FORMAT.fullmatch(org_id):
        return
    if org_type == "wijkteam" and WIJKTEAM_ID_FORMAT.fullmatch(org_id) and len(org_id) <= 64:
        return
    expected = "its URA (8 digits)" + (
        ", or wijkteam-<name> for a wijkteam without one" if org_type == "wijkteam" else ""
    )
    raise ValidationFailed("org_id", f"a {org_type} organisation is identified by {expected}")


def check_acting_as(registered_type: str | None, token_type: str) -> None:
    """A recipient acts as the kind of organisation the directory has it as: a token carrying a JGZ's
    `org_id` with `org_type: wijkteam` (or the other way round) is refused. `registered_type` None: the
    directory does not know the organisation (it holds no deliveries; what it asks for is not found)."""
    if registered_type is not None and registered_type != token_type:
        raise Forbidden(f"your token's org_type ({token_type}) is not your organisation's type in the directory")


@dataclass(frozen=True)
class Candidate:
    org_id: str
    name: str
    by_range: bool  # serves the address through a postcode range (beats a whole gemeente)
    delivery_mode: DeliveryMode = "full"


def choose(candidates: list[Candidate]) -> Candidate | None:
    """For one recipient type: a postcode range beats a whole gemeente (the overlap rule keeps each unique)."""
    by_range = [c for c in candidates if c.by_range]
    chosen = by_range or candidates
    return sorted(chosen, key=lambda c: c.org_id)[0] if chosen else None


def next_status(current: DeliveryStatus, reported: DeliveryStatus) -> DeliveryStatus | None:
    """The delivery's new status, or None if nothing changes. Forward only; a retracted delivery is closed to
    all, a returned one to its recipient; a melding can be returned only before contact was made."""
    if current is DeliveryStatus.retracted:
        raise Conflict("this delivery was retracted: the melding must be deleted, not reported on")
    if reported == current:
        return None
    if current is DeliveryStatus.returned:
        raise Conflict("this delivery was returned: it is no longer yours to report on")
    if reported is DeliveryStatus.returned and current not in (DeliveryStatus.queued, DeliveryStatus.received):
        raise Conflict(f"a delivery can be returned only before contact is made (it is {current.value})")
    if reported is not DeliveryStatus.returned and reported.rank < current.rank:
        raise Conflict(f"a delivery cannot go back from {current.value} to {reported.value}")
    return reported


class WhenStopped(StrEnum):
    """What becomes of a delivery when its melding is stopped (cancelled by the sender, consent withdrawn)."""

    retract = "retract"  # live at its recipient: a retraction goes out, and our copy loses its content
    clear = "clear"  # returned: it stays returned (final); our copy loses its content
    keep = "keep"  # retracted already: nothing left to do


def when_stopped(status: DeliveryStatus) -> WhenStopped:
    """Only live deliveries are retracted. A returned one is not live: it made way for the next delivery of its
    type (one live delivery per melding and type), and it stays what its recipient made it."""
    if status is DeliveryStatus.retracted:
        return WhenStopped.keep
    if status is DeliveryStatus.returned:
        return WhenStopped.clear
    return WhenStopped.retract


# Outcomes that say contact was made: closing with one needs the day of contact.
OUTCOMES_AFTER_CONTACT = frozenset({"phb-done", "support-started"})


@dataclass(frozen=True)
class Report:
    """What a recipient reports on a delivery (`POST /v1/deliveries/{id}/status`)."""

    status: DeliveryStatus
    note: str | None = None
    contact_at: date | None = None
    outcome: str | None = None
    returned_reason: str | None = None


@dataclass(frozen=True)
class Answered:
    """What a report changes: the delivery's new status and the answer it carries (a later status carries the
    day of contact too: events may be handled out of order, and the later one must not lose it)."""

    status: DeliveryStatus
    contact_at: date | None = None
    outcome: str | None = None
    returned_reason: str | None = None


def answer_report(delivery: DeliveryRecord, report: Report, *, today: date, delivered_on: date) -> Answered | None:
    """The change a report makes, or None when it is the same report again (200, nothing changes).

    Forward only (`next_status`). `contact_made` carries its day (default today); `closed` its outcome
    (default `not-reported`) and may carry `contact_at`, which records the contact; closing with an outcome
    that says contact was made (`phb-done`, `support-started`) needs that day, from an earlier
    `contact_made` or on this report (422). Nothing is accepted and then dropped: a report of the status the
    delivery has already that says something else (another day, outcome, reason or note) is 409, and so is
    a contact day other than the one recorded. A field left out of a repeat says nothing, and contradicts
    nothing."""
    if report.contact_at is not None and report.status not in (DeliveryStatus.contact_made, DeliveryStatus.closed):
        raise ValidationFailed("contact_at", "contact_at goes with status contact_made or closed")
    if report.outcome is not None and report.status is not DeliveryStatus.closed:
        raise ValidationFailed("outcome", "outcome goes with status closed")
    if (report.returned_reason is not None) != (report.status is DeliveryStatus.returned):
        raise ValidationFailed("reason", "a returned melding needs its reason, and only a returned one has one")
    new = next_status(delivery.status, report.status)
    if report.contact_at is not None:
        check_contact_at(report.contact_at, delivered_on=delivered_on, today=today)
        if delivery.contact_at is not None and report.contact_at != delivery.contact_at:
            raise Conflict(f"contact was recorded on {delivery.contact_at.isoformat()}: it cannot change")
    if new is None:
        _check_same_report(delivery, report)
        return None
    if new is DeliveryStatus.contact_made:
        return Answered(new, contact_at=report.contact_at or today)
    if new is DeliveryStatus.closed:
        contact_at, outcome = report.contact_at or delivery.contact_at, report.outcome or NOT_REPORTED
        if outcome in OUTCOMES_AFTER_CONTACT and contact_at is None:
            raise ValidationFailed(
                "contact_at",
                f"closing with outcome {outcome} needs the day contact was made: report contact_made first, "
                "or send contact_at with closed",
            )
        return Answered(new, contact_at=contact_at, outcome=outcome)
    return Answered(new, contact_at=delivery.contact_at, returned_reason=report.returned_reason)


def _check_same_report(delivery: DeliveryRecord, report: Report) -> None:
    """The status again: 200 if it says what the delivery says already, else 409 (it would be dropped)."""
    said = {
        "contact_at": report.contact_at,
        "outcome": report.outcome,
        "reason": report.returned_reason,
        "note": report.note,
    }
    kept = {
        "contact_at": delivery.contact_at,
        "outcome": delivery.outcome,
        "reason": delivery.returned_reason,
        "note": delivery.status_note,
    }
    for name, value in said.items():
        if value is not None and value != kept[name]:
            raise Conflict(f"this delivery is {delivery.status.value} already, with another {name} (or none)")


def check_contact_at(contact_at: date, *, delivered_on: date, today: date) -> None:
    """When contact was made: not in the future, and not before the delivery."""
    if contact_at > today:
        raise ValidationFailed("contact_at", "contact_at must not be in the future")
    if contact_at < delivered_on:
        raise ValidationFailed("contact_at", "contact_at must not lie before the delivery")


def is_overdue(status: DeliveryStatus, contact_due_at: datetime | None, at: datetime) -> bool:
    """A delivery still waiting for contact (queued or received) past its contact deadline."""
    waiting = status in (DeliveryStatus.queued, DeliveryStatus.received)
    return waiting and contact_due_at is not None and contact_due_at <= at


def merge_ranges(pc4s: list[str]) -> list[Pc4Range]:
    """Consecutive postcode areas as ranges: ["1011", "1012", "1014"] -> 1011-1012, 1014-1014."""
    ranges: list[Pc4Range] = []
    for pc4 in sorted(set(pc4s)):
        if ranges and int(pc4) == int(ranges[-1].end) + 1:
            ranges[-1] = Pc4Range(ranges[-1].start, pc4)
        else:
            ranges.append(Pc4Range(pc4, pc4))
    return ranges


# --- consent at delivery time ---------------------------------------------------------------------


def consent_refusal(
    *,
    valid_until: date,
    consented_types: Sequence[str],
    requested_types: Sequence[str],
    consented_domains: Sequence[str] | None = None,
    requested_domains: Sequence[str] = (),
    today: date,
) -> str | None:
    """Why the consent a melding was accepted under no longer lets it go out, or None if it does.
    `consented_domains` None: the patient agreed to share every risk domain.

    A consent never changes after it is recorded except by withdrawal (which routing keeps as its own
    record, from `consent.withdrawn`) and by time: valid through the whole of its last day, as the
    consent service counts it. Organisation and patient were compared at intake and cannot change.
    The reasons are the consent service's (`POST /v1/consents/check`).
    """
    if today > valid_until:
        return "expired"
    if not set(requested_types) <= set(consented_types):
        return "out-of-scope"
    if consented_domains is not None and not set(requested_domains) <= set(consented_domains):
        return "out-of-scope"
    return None


def intake_check_is_fresh(accepted_at: datetime, at: datetime, *, within: timedelta) -> bool:
    """Was the melding accepted (its consent checked) so recently that routing's own record suffices?

    Both ways, so a clock running ahead at the melding service does not make an old melding look new.
    """
    return abs(at - accepted_at) <= within


# --- what the routing service keeps ----------------------------------------------------------------


@dataclass(frozen=True)
class RoutedMelding:
    """A melding routing has taken. `accepted` (its personal data) is None once withdrawn, refused or purged."""

    melding_id: str
    consent_id: str
    sender_org_id: str
    status: RoutingStatus
    accepted: MeldingAccepted | None
    requested_types: tuple[str, ...]
    unroutable_types: tuple[str, ...]
    gemeente_code: str | None
    created_at: datetime
    updated_at: datetime
    purged_at: datetime | None = None
    skipped_types: tuple[Skipped, ...] = ()
    not_delivered_reason: NotDeliveredReason | None = None
    returned: tuple[Returned, ...] = ()  # sent back by a recipient: waiting for an operator

    def waiting_for_the_directory(self) -> list[str]:
        """The unroutable types a directory change may route: those no recipient sent back."""
        for_operator = types_for_an_operator(self.returned)
        return [t for t in self.unroutable_types if t not in for_operator]

    def waits_for(self, recipient_type: str) -> bool:
        """Whether an operator may name an organisation of this type: it was returned or found none."""
        return recipient_type in types_for_an_operator(self.returned) | set(self.unroutable_types)

    def never_again(self) -> dict[str, set[str]]:
        """Per type, the organisations automatic routing must not choose: they returned it as wrong recipient."""
        out: dict[str, set[str]] = {}
        for r in self.returned:
            if r.reason == "wrong-recipient":
                out.setdefault(r.recipient_type, set()).add(r.org_id)
        return out


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery to one organisation; `message` is the queue message (or its retraction, or what is left
    once its personal data is removed)."""

    delivery_id: str
    melding_id: str
    org_id: str
    org_name: str
    recipient_type: str
    status: DeliveryStatus
    message: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    status_note: str | None = None
    contact_due_at: datetime | None = None
    overdue_at: datetime | None = None
    contact_at: date | None = None
    outcome: str | None = None
    returned_reason: str | None = None

    def document(self) -> dict[str, Any]:
        """As `GET /v1/deliveries/{id}` shows it: the queue message with the delivery's status."""
        return {**self.message, "status": self.status.value}

    @property
    def bsn(self) -> str | None:
        return (self.message.get("patient") or {}).get("bsn")


@dataclass(frozen=True)
class LoggedMessage:
    """A message that went on a recipient's queue, as the log keeps it (no personal data: a full delivery is
    kept in its thin form, `full` says its content is read from the delivery)."""

    org_id: str
    sequence: int
    message_id: str
    message_type: str
    delivery_id: str
    body: dict[str, Any]
    full: bool


def message_again(logged: LoggedMessage, delivery: DeliveryRecord | None) -> dict[str, Any]:
    """A message of a recipient's queue as `GET /v1/deliveries/messages` gives it again, with its AMQP `type` and
    `message_id` (to drop what was seen already): a full
    delivery with its content while routing still holds it (not retracted, not past retention), else as kept."""
    envelope = {"type": logged.message_type, "message_id": logged.message_id}
    if logged.full and delivery is not None and "patient" in delivery.message:
        return {**envelope, **delivery.message, "sequence": logged.sequence}
    return {**envelope, **logged.body}


@dataclass(frozen=True)
class DeadLetter:
    id: str
    queue: str
    message_id: str | None
    message_type: str | None
    body: str
    body_encoding: str  # utf-8, or base64 for an unreadable body
    correlation_id: str | None
    reason: str | None
    died_at: datetime
    replayed_at: datetime | None = None


@dataclass(frozen=True)
class ConsentState:
    consent_id: str
    withdrawn_at: datetime | None


@dataclass(frozen=True)
class GemeenteRecord:
    code: str
    name: str
    source: str
    ended_at: datetime | None


@dataclass(frozen=True)
class Organisation:
    org_id: str
    name: str
    type: str
    active: bool
    created_at: datetime
    updated_at: datetime
    delivery_mode: DeliveryMode = "full"


@dataclass(frozen=True)
class StraddlingArea:
    """A postcode area on a gemeente border, with the share of its addresses in one of the gemeenten."""

    pc4: str
    gemeente_code: str
    share: float


@dataclass(frozen=True)
class RoutingOutcome:
    """What one routing attempt found for a melding that goes on (routed, or waiting): stored per melding."""

    melding_id: str
    status: RoutingStatus
    unroutable_types: tuple[str, ...]
    skipped: tuple[Skipped, ...]
    gemeente_code: str | None


# Which organisations could take a type for a postcode area (in a gemeente): (org_type, pc4, gemeente_code).
CandidateQuery = tuple[str, str, str | None]

PREGNANCY_WINDOW = timedelta(days=60)  # two expected due dates this close are one pregnancy


@dataclass(frozen=True)
class PatientDelivery:
    """A delivery made of one of the patient's meldingen (who sent it, for which expected due date): what
    tells whether a new delivery to the same organisation is the same pregnancy told by someone else."""

    delivery_id: str
    org_id: str
    melding_id: str
    sender_org_id: str
    expected_due_date: date


def related_deliveries(earlier: Iterable[PatientDelivery], accepted: MeldingAccepted, org_id: str) -> list[str]:
    """Of the patient's earlier deliveries (not retracted), those to `org_id` of the same pregnancy sent by
    another organisation: the recipient sees one pregnancy, not two cases."""
    due = accepted.content.pregnancy.expected_due_date
    return [
        d.delivery_id
        for d in earlier
        if d.org_id == org_id
        and d.melding_id != accepted.melding_id
        and d.sender_org_id != accepted.sender.org_id
        and abs(d.expected_due_date - due) <= PREGNANCY_WINDOW
    ]
