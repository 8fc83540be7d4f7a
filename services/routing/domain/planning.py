"""Routing's decision for one melding, as a pure function: who receives it, with which share of it, and what
becomes of the rest. The service layer loads what it needs, asks `plan_routing` and persists the plan.

Consent limits (it may have expired since intake, or been withdrawn), the route map decides (a type whose
rule admits none of the melding's domains is skipped; a delivery carries only the admitted domains, and
the note only where allowed), and the directory finds the organisation (a postcode range beats a whole
gemeente). A type the route map admits but no organisation serves yet waits (unroutable). No I/O here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from services.routing.domain.model import (
    Candidate,
    NotDeliveredReason,
    RoutingStatus,
    Skipped,
    SkipReason,
    choose,
    consent_refusal,
)
from services.routing.domain.route_map import RouteMap
from shared.contracts.vocabulary import DeliveryMode


@dataclass(frozen=True)
class MeldingToRoute:
    """What routing weighs of a melding: what was asked for and what the consent allows."""

    recipient_types: tuple[str, ...]
    risk_domains: tuple[str, ...]
    urgency: str
    consent_valid_until: date
    consent_recipient_types: tuple[str, ...]
    consent_risk_domains: tuple[str, ...] | None  # None: the patient agreed to share every domain


@dataclass(frozen=True)
class PlannedDelivery:
    recipient_type: str
    org_id: str
    org_name: str
    risk_domains: tuple[str, ...]  # only what the route map admits for this type
    note: bool  # whether the free-text note goes along
    contact_deadline: timedelta
    delivery_mode: DeliveryMode = "full"  # thin: the queue carries no personal data, only an href


class WaitReason(StrEnum):
    """Why a requested type found no organisation (what an operator is told when it keeps waiting)."""

    no_organisation = "no-organisation"  # no active organisation of the type serves the address
    returned_by_all = "returned-by-all"  # every one that serves it returned it as the wrong recipient


@dataclass(frozen=True)
class Waiting:
    recipient_type: str
    reason: WaitReason


@dataclass(frozen=True)
class RoutingPlan:
    status: RoutingStatus
    deliveries: tuple[PlannedDelivery, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    unroutable: tuple[str, ...] = ()
    waiting: tuple[Waiting, ...] = ()  # per type in `unroutable`, why
    not_delivered_reason: NotDeliveredReason | None = None
    consent_refusal: str | None = None  # the consent's reason, when it let nothing out


def plan_routing(
    melding: MeldingToRoute,
    *,
    withdrawn: bool,
    consent_answer: str | None,
    route_map: RouteMap,
    candidates: Mapping[str, Sequence[Candidate]],
    delivered_types: Collection[str],
    today: date,
    cancelled: bool = False,
    never_again: Mapping[str, Collection[str]] | None = None,
    chosen: Mapping[str, Candidate] | None = None,
) -> RoutingPlan:
    """Route one melding now.

    `withdrawn`: routing's own record of the consent's withdrawal; `consent_answer`: the consent service's
    refusal reason when it was asked (a melding that waited), else None. `candidates`: per recipient type,
    the organisations serving the address. `delivered_types`: types that already have their delivery (a
    melding routed again once the directory covers a type it waited for, or after a recipient returned it).
    `cancelled`: the sender cancelled it. `never_again`: per type, organisations that returned it as the
    wrong recipient (automatic routing passes them by). `chosen`: per type, the organisation an operator
    named when routing it again (it beats the directory).
    """
    if withdrawn or consent_answer == "withdrawn":
        return RoutingPlan(RoutingStatus.withdrawn)
    if cancelled:
        return RoutingPlan(RoutingStatus.cancelled)
    refusal = consent_answer or consent_refusal(
        valid_until=melding.consent_valid_until,
        consented_types=melding.consent_recipient_types,
        requested_types=melding.recipient_types,
        consented_domains=melding.consent_risk_domains,
        requested_domains=melding.risk_domains,
        today=today,
    )
    if refusal is not None:
        reason = NotDeliveredReason.consent_expired if refusal == "expired" else NotDeliveredReason.consent_refused
        return RoutingPlan(RoutingStatus.not_delivered, not_delivered_reason=reason, consent_refusal=refusal)

    deliveries: list[PlannedDelivery] = []
    skipped: list[Skipped] = []
    unroutable: list[str] = []
    waiting: list[Waiting] = []
    for recipient_type in melding.recipient_types:
        if recipient_type in delivered_types:
            continue
        share = route_map.share_for(recipient_type, melding.risk_domains)
        if share is None:
            skipped.append(Skipped(recipient_type, SkipReason.route_map))
            continue
        rule, admitted = share
        excluded = (never_again or {}).get(recipient_type, ())
        serving = candidates.get(recipient_type, ())
        allowed = [c for c in serving if c.org_id not in excluded]
        organisation = (chosen or {}).get(recipient_type) or choose(allowed)
        if organisation is None:
            unroutable.append(recipient_type)
            waiting.append(
                Waiting(recipient_type, WaitReason.returned_by_all if serving else WaitReason.no_organisation)
            )
            continue
        deliveries.append(
            PlannedDelivery(
                recipient_type=recipient_type,
                org_id=organisation.org_id,
                org_name=organisation.name,
                risk_domains=admitted,
                note=rule.note,
                contact_deadline=route_map.deadline_for(melding.urgency),
                delivery_mode=organisation.delivery_mode,
            )
        )

    if unroutable:
        status = RoutingStatus.waiting
    elif deliveries or delivered_types:
        status = RoutingStatus.routed
    else:
        return RoutingPlan(
            RoutingStatus.not_delivered, skipped=tuple(skipped), not_delivered_reason=NotDeliveredReason.route_map
        )
    return RoutingPlan(
        status,
        deliveries=tuple(deliveries),
        skipped=tuple(skipped),
        unroutable=tuple(unroutable),
        waiting=tuple(waiting),
    )


def why_waiting(waiting: Sequence[Waiting], gemeente: tuple[str, str] | None) -> str | None:
    """What an operator reads when a melding keeps waiting: per type, in words. `gemeente`: (code, name) of
    the address's gemeente, None when the directory places the postcode in none. No personal data."""
    if not waiting:
        return None
    where = (
        f"gemeente {gemeente[1]} ({gemeente[0]})"
        if gemeente
        else "the address (its postcode lies in no gemeente of the directory)"
    )
    said = []
    for w in waiting:
        if w.reason is WaitReason.returned_by_all:
            said.append(
                f"every active {w.recipient_type} organisation serving {where} returned it as the wrong recipient: "
                "name one with `org_id`, or register the right one"
            )
        else:
            said.append(
                f"no active {w.recipient_type} organisation serves {where}: register one "
                "(PUT /v1/organisations/{org_id}) or name one with `org_id`"
            )
    return "; ".join(said)


def types_needing_candidates(
    melding: MeldingToRoute, route_map: RouteMap, delivered_types: Collection[str]
) -> list[str]:
    """The recipient types worth looking up in the directory: requested, not delivered yet, and admitted by
    the route map for at least one of the melding's domains."""
    return [
        recipient_type
        for recipient_type in melding.recipient_types
        if recipient_type not in delivered_types and route_map.share_for(recipient_type, melding.risk_domains)
    ]
