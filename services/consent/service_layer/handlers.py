"""Use cases of the consent service. Each runs in one unit of work; nothing else commits."""

from __future__ import annotations

from datetime import date

from services.consent.domain.model import Consent, WithdrawnBy, new_consent_id
from services.consent.service_layer.ports import ConsentTransaction, TransactionFactory
from shared.auth import Principal
from shared.clock import now, today_nl
from shared.contracts.events import CONSENT_RECORDED, CONSENT_WITHDRAWN, ConsentRecorded, ConsentWithdrawn
from shared.contracts.vocabulary import CheckReason
from shared.errors import NotFound
from shared.idempotency import IdempotentRequest, create_once
from shared.messaging.topology import EVENTS_EXCHANGE

RESOURCE = "consent"


async def record_consent(
    unit_of_work: TransactionFactory,
    *,
    principal: Principal,
    bsn: str,
    recipient_types: list[str],
    purpose: str,
    method: str,
    given_at: date,
    valid_until: date | None,
    risk_domains: list[str] | None = None,
    informed_about: list[str] | None = None,
    idempotency_key: str | None,
    request_fingerprint: str,
    request_id: str | None,
) -> Consent:
    """Record a consent for the caller's organisation; a retry with the same key returns the first one."""

    async def create(uow: ConsentTransaction, consent_id: str) -> Consent:
        consent = Consent.record(
            consent_id=consent_id,
            bsn=bsn,
            recipient_types=recipient_types,
            purpose=purpose,
            method=method,
            given_at=given_at,
            valid_until=valid_until,
            risk_domains=risk_domains,
            informed_about=informed_about,
            org_id=principal.org_id,
            org_type=principal.org_type,
            sub=principal.sub,
            today=today_nl(),
            now=now(),
        )
        await uow.consents.add(consent)
        # The melding service checks meldingen against its own record of consents, made of these events.
        await uow.outbox.add(
            exchange=EVENTS_EXCHANGE,
            routing_key=CONSENT_RECORDED,
            message_type=CONSENT_RECORDED,
            body=ConsentRecorded(
                consent_id=consent.id,
                org_id=consent.recorded_by_org_id,
                patient_ref=uow.consents.cipher.bsn_ref(consent.bsn),
                recipient_types=list(consent.recipient_types),
                risk_domains=None if consent.risk_domains is None else list(consent.risk_domains),
                informed_about=list(consent.informed_about),
                valid_until=consent.valid_until,
                recorded_at=consent.created_at,
            ),
            correlation_id=request_id,
            request_id=request_id,
            message_id=f"recorded:{consent.id}",
        )
        uow.audit.record(principal, "create", RESOURCE, consent.id, patient_bsn=bsn, request_id=request_id)
        await uow.commit()
        return consent

    async def replay(uow: ConsentTransaction, consent_id: str) -> Consent:
        consent = await uow.consents.get(consent_id)
        assert consent is not None  # consents are never deleted
        return consent

    request = (
        None
        if idempotency_key is None
        else IdempotentRequest(principal.org_id, idempotency_key, request_fingerprint, status_code=201)
    )
    return await create_once(unit_of_work, request, new_id=new_consent_id, create=create, replay=replay)


async def _own_consent(
    uow: ConsentTransaction, consent_id: str, principal: Principal, action: str, request_id: str | None
) -> Consent:
    consent = await uow.consents.get(consent_id)
    # Another organisation's consent is answered exactly like a missing one: its existence is not revealed.
    # The attempt is audited (on its own: this transaction rolls back).
    if consent is None or consent.recorded_by_org_id != principal.org_id:
        uow.audit.refuse(principal, action, RESOURCE, consent_id, request_id=request_id, outcome="not-found")
        raise NotFound("no consent with this id for your organisation")
    return consent


async def get_consent(
    unit_of_work: TransactionFactory, *, principal: Principal, consent_id: str, request_id: str | None
) -> Consent:
    """One consent recorded by the caller's organisation."""
    async with unit_of_work() as uow:
        consent = await _own_consent(uow, consent_id, principal, "read", request_id)
        uow.audit.record(principal, "read", RESOURCE, consent.id, patient_bsn=consent.bsn, request_id=request_id)
        await uow.commit()
        return consent


async def withdraw_consent(
    unit_of_work: TransactionFactory,
    *,
    principal: Principal,
    consent_id: str,
    reason: str | None,
    request_id: str | None,
) -> Consent:
    """Withdraw a consent and announce it (`consent.withdrawn`, through the outbox). A repeat changes nothing."""
    async with unit_of_work() as uow:
        consent = await _own_consent(uow, consent_id, principal, "withdraw", request_id)
        return await _withdraw(uow, consent, principal, reason, WithdrawnBy.organisation, request_id)


async def _withdraw(
    uow: ConsentTransaction,
    consent: Consent,
    principal: Principal,
    reason: str | None,
    by: WithdrawnBy,
    request_id: str | None,
) -> Consent:
    """The one withdrawal, whoever makes it: the same event, so routing retracts and purges alike."""
    if consent.withdrawn_at is not None:
        return consent
    consent = consent.withdraw(now=now(), reason=reason, by=by)
    assert consent.withdrawn_at is not None
    await uow.consents.save_withdrawal(consent)
    await uow.outbox.add(
        exchange=EVENTS_EXCHANGE,
        routing_key=CONSENT_WITHDRAWN,
        message_type=CONSENT_WITHDRAWN,
        body=ConsentWithdrawn(
            consent_id=consent.id, org_id=consent.recorded_by_org_id, withdrawn_at=consent.withdrawn_at
        ),
        correlation_id=request_id,
        request_id=request_id,
    )
    uow.audit.record(principal, "withdraw", RESOURCE, consent.id, patient_bsn=consent.bsn, request_id=request_id)
    await uow.commit()
    return consent


# --- her own view: a patient token (`sub` the keyed hash of her BSN) reads and withdraws only her consents ---


async def list_patient_consents(
    unit_of_work: TransactionFactory, *, patient: Principal, request_id: str | None
) -> list[Consent]:
    """Every consent recorded for the woman herself, by any organisation; her read is audited with her as actor."""
    async with unit_of_work() as uow:
        found = await uow.consents.of_patient(patient.sub)
        uow.audit.record(
            patient, "search", RESOURCE, None, patient_bsn=None, patient_ref=patient.sub, request_id=request_id
        )
        await uow.commit()
        return found


async def withdraw_patient_consent(
    unit_of_work: TransactionFactory, *, patient: Principal, consent_id: str, request_id: str | None
) -> Consent:
    """The woman withdraws one of her consents herself: the same withdrawal as the organisation's, recorded as hers.
    Another woman's consent is answered like a missing one."""
    async with unit_of_work() as uow:
        consent = await uow.consents.get(consent_id)
        if consent is None or not consent.belongs_to(patient.sub, uow.consents.cipher.bsn_ref):
            uow.audit.refuse(patient, "withdraw", RESOURCE, consent_id, request_id=request_id, outcome="not-found")
            raise NotFound("no consent with this id for you")
        return await _withdraw(uow, consent, patient, None, WithdrawnBy.patient, request_id)


async def search_consents(
    unit_of_work: TransactionFactory, *, principal: Principal, bsn: str, request_id: str | None
) -> list[Consent]:
    """The caller's organisation's consents for one patient."""
    async with unit_of_work() as uow:
        found = await uow.consents.for_patient(org_id=principal.org_id, bsn=bsn)
        uow.audit.record(principal, "search", RESOURCE, None, patient_bsn=bsn, request_id=request_id)
        await uow.commit()
        return found


async def check_consent(
    unit_of_work: TransactionFactory,
    *,
    principal: Principal,
    consent_id: str,
    bsn: str,
    org_id: str,
    recipient_types: list[str],
    risk_domains: list[str] | None = None,
    request_id: str | None,
) -> tuple[CheckReason | None, Consent | None]:
    """Whether a melding from `org_id` for this patient may go to `recipient_types` carrying `risk_domains`
    (reason None: it may)."""
    async with unit_of_work() as uow:
        consent = await uow.consents.get(consent_id)
        reason = (
            CheckReason.not_found if consent is None
            else consent.check(
                bsn=bsn, org_id=org_id, recipient_types=recipient_types, risk_domains=risk_domains, today=today_nl()
            )
        )  # fmt: skip
        uow.audit.record(
            principal,
            "check",
            RESOURCE,
            consent_id if consent is not None else None,
            patient_bsn=bsn,
            request_id=request_id,
            outcome="allowed" if reason is None else f"refused:{reason.value}",
            consent_checked=reason is None,
        )
        await uow.commit()
        return reason, consent
