"""The consent rule: whether a melding may go out under a consent. No I/O here.

One rule, asked in two places: the consent service answers `POST /v1/consents/check` with it, and the melding
service applies it to its own record of consents (fed by `consent.recorded` and `consent.withdrawn`), so that
the two can never disagree about a consent both know.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, timedelta

from shared.contracts.vocabulary import CheckReason


def refusal(
    *,
    recorded_by: str,
    org_id: str,
    same_patient: bool,
    withdrawn: bool,
    valid_until: date,
    today: date,
    consented_types: Collection[str],
    consented_domains: Collection[str] | None,
    recipient_types: Collection[str],
    risk_domains: Collection[str] | None,
) -> CheckReason | None:
    """Why a melding from `org_id` for a patient (`same_patient`: the consent's own) may not go to
    `recipient_types` carrying `risk_domains`, or None if it may. It must ask only for consented recipient
    types and (when it names risk domains) carry only consented ones; `consented_domains` None: every domain.

    The organisation is compared first, so that another organisation learns nothing of the patient."""
    if org_id != recorded_by:
        return CheckReason.other_organisation
    if not same_patient:
        return CheckReason.other_patient
    if withdrawn:
        return CheckReason.withdrawn
    if today > valid_until:  # valid through the whole of its last day
        return CheckReason.expired
    if not set(recipient_types) <= set(consented_types):
        return CheckReason.out_of_scope
    if consented_domains is not None and not set(risk_domains or ()) <= set(consented_domains):
        return CheckReason.out_of_scope
    return None


def feed_is_current(heard_at: datetime | None, now: datetime, *, max_lag: timedelta) -> bool:
    """Whether a service's record of consents is current enough to decide on: the consent service's last
    heartbeat (`consent.heartbeat`, behind every consent event published before it) reached it no more than
    `max_lag` ago. Never heard, or `max_lag` zero: it is not (ask the consent service)."""
    return heard_at is not None and max_lag > timedelta(0) and now - heard_at <= max_lag
