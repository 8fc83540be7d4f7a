"""Use cases of the consent service. Each runs in one unit of work; nothing else commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.exc import IntegrityError

from services.consent.adapters.orm import audit, idempotency_keys, outbox
from services.consent.adapters.repository import ConsentRepository
from services.consent.domain.model import CheckReason, Consent, new_consent_id
from shared import idempotency
from shared.audit import record_access, record_refusal
from shared.auth import Principal
from shared.clock import now, today_nl
from shared.contracts.events import CONSENT_WITHDRAWN, ConsentWithdrawn
from shared.db import Database, UnitOfWork
from shared.errors import NotFound
from shared.messaging.outbox import add_message
from shared.messaging.topology import EVENTS_EXCHANGE

SERVICE = "consent"


@dataclass(frozen=True)
class Recorded:
    consent: Consent
    replayed: bool


def _audit(
    uow: UnitOfWork, principal: Principal, action: str, consent_id: str | None, bsn: str | None, request_id: str | None
) -> None:
    record_access(
        uow,
        audit,
        service=SERVICE,
        principal=principal,
        action=action,
        resource_type="consent",
        resource_id=consent_id,
        patient_bsn=bsn,
        request_id=request_id,
    )


async def record_consent(
    database: Database,
    *,
    principal: Principal,
    bsn: str,
    recipient_types: list[str],
    purpose: str,
    method: str,
    given_at: date,
    valid_until: date | None,
    idempotency_key: str | None,
    request_fingerprint: str,
    request_id: str | None,
) -> Recorded:
    """Record a consent for the caller's organisation; a retry with the same key returns the first one."""
    for attempt in (1, 2):
        try:
            async with database.unit_of_work() as uow:
                repository = ConsentRepository(uow)
                if idempotency_key is not None:
                    previous = await idempotency.find_previous(
                        uow,
                        idempotency_keys,
                        org_id=principal.org_id,
                        key=idempotency_key,
                        request_fingerprint=request_fingerprint,
                    )
                    if previous is not None:
                        consent = await repository.get(previous.resource_id)
                        assert consent is not None  # consents are never deleted
                        return Recorded(consent, replayed=True)
                    # The key first: a concurrent request with the same key waits here, then fails.
                    consent_id = new_consent_id()
                    await idempotency.remember(
                        uow,
                        idempotency_keys,
                        org_id=principal.org_id,
                        key=idempotency_key,
                        request_fingerprint=request_fingerprint,
                        status_code=201,
                        resource_id=consent_id,
                    )
                else:
                    consent_id = new_consent_id()
                consent = Consent.record(
                    consent_id=consent_id,
                    bsn=bsn,
                    recipient_types=recipient_types,
                    purpose=purpose,
                    method=method,
                    given_at=given_at,
                    valid_until=valid_until,
                    org_id=principal.org_id,
                    org_type=principal.org_type,
                    sub=principal.sub,
                    today=today_nl(),
                    now=now(),
                )
                await repository.add(consent)
                _audit(uow, principal, "create", consent.id, bsn, request_id)
                await uow.commit()
                return Recorded(consent, replayed=False)
        except IntegrityError:
            # A concurrent request with the same key committed first: answer as it did.
            if idempotency_key is None or attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _own_consent(
    uow: UnitOfWork, consent_id: str, principal: Principal, action: str, request_id: str | None
) -> Consent:
    consent = await ConsentRepository(uow).get(consent_id)
    # Another organisation's consent is answered exactly like a missing one: its existence is not revealed.
    # The attempt is audited (on its own: this transaction rolls back).
    if consent is None or consent.recorded_by_org_id != principal.org_id:
        record_refusal(
            uow,
            audit,
            service=SERVICE,
            principal=principal,
            action=action,
            resource_type="consent",
            resource_id=consent_id,
            patient_bsn=None,
            request_id=request_id,
            outcome="not-found",
        )
        raise NotFound("no consent with this id for your organisation")
    return consent


async def get_consent(database: Database, *, principal: Principal, consent_id: str, request_id: str | None) -> Consent:
    """One consent recorded by the caller's organisation."""
    async with database.unit_of_work() as uow:
        consent = await _own_consent(uow, consent_id, principal, "read", request_id)
        _audit(uow, principal, "read", consent.id, consent.bsn, request_id)
        await uow.commit()
        return consent


async def withdraw_consent(
    database: Database, *, principal: Principal, consent_id: str, reason: str | None, request_id: str | None
) -> Consent:
    """Withdraw a consent and announce it (`consent.withdrawn`, through the outbox). A repeat changes nothing."""
    async with database.unit_of_work() as uow:
        repository = ConsentRepository(uow)
        consent = await _own_consent(uow, consent_id, principal, "withdraw", request_id)
        if consent.withdrawn_at is not None:
            return consent
        consent = consent.withdraw(now=now(), reason=reason)
        assert consent.withdrawn_at is not None
        await repository.save_withdrawal(consent)
        await add_message(
            uow,
            outbox,
            exchange=EVENTS_EXCHANGE,
            routing_key=CONSENT_WITHDRAWN,
            message_type=CONSENT_WITHDRAWN,
            body=ConsentWithdrawn(
                consent_id=consent.id, org_id=consent.recorded_by_org_id, withdrawn_at=consent.withdrawn_at
            ),
            correlation_id=request_id,
            request_id=request_id,
        )
        _audit(uow, principal, "withdraw", consent.id, consent.bsn, request_id)
        await uow.commit()
        return consent


async def search_consents(
    database: Database, *, principal: Principal, bsn: str, request_id: str | None
) -> list[Consent]:
    """The caller's organisation's consents for one patient."""
    async with database.unit_of_work() as uow:
        found = await ConsentRepository(uow).for_patient(org_id=principal.org_id, bsn=bsn)
        _audit(uow, principal, "search", None, bsn, request_id)
        await uow.commit()
        return found


async def check_consent(
    database: Database,
    *,
    principal: Principal,
    consent_id: str,
    bsn: str,
    org_id: str,
    recipient_types: list[str],
    request_id: str | None,
) -> tuple[CheckReason | None, Consent | None]:
    """Whether a melding from `org_id` for this patient may go to `recipient_types` (reason None: it may)."""
    async with database.unit_of_work() as uow:
        consent = await ConsentRepository(uow).get(consent_id)
        reason = (
            CheckReason.not_found if consent is None
            else consent.check(bsn=bsn, org_id=org_id, recipient_types=recipient_types, today=today_nl())
        )  # fmt: skip
        record_access(
            uow,
            audit,
            service=SERVICE,
            principal=principal,
            action="check",
            resource_type="consent",
            resource_id=consent_id if consent is not None else None,
            patient_bsn=bsn,
            request_id=request_id,
            outcome="allowed" if reason is None else f"refused:{reason.value}",
            consent_checked=reason is None,
        )
        await uow.commit()
        return reason, consent
