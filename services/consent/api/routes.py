"""HTTP routes of the consent service: parse, call a handler, shape the answer. No rules here."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from services.consent.api.deps import ConsentChecker, ConsentReader, ConsentWriter, Patient, UnitOfWorkDep
from services.consent.api.schemas import (
    ConsentCheck,
    ConsentCheckResult,
    ConsentCreate,
    ConsentList,
    ConsentRead,
    ConsentSearch,
    ConsentWithdraw,
    scope_of,
)
from services.consent.service_layer import handlers
from shared.api import IdInPath, RequestId
from shared.clock import today_nl
from shared.idempotency import IdempotencyKey, fingerprint
from shared.problems import problem_responses

router = APIRouter(prefix="/v1/consents", tags=["consents"])
# Her own view (the portal, with a token bound to her keyed BSN): her consents, whoever recorded them.
patient_router = APIRouter(prefix="/v1/self/consents", tags=["her own view"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ConsentRead,
    summary="Record a consent",
    description="Records the patient's consent for the caller's organisation (from the token). "
    "Send an `Idempotency-Key` so that a retry after a timeout returns the first consent instead of a second.",
    responses={
        **problem_responses("validation", "idempotency-conflict"),
        201: {"headers": {"Location": {"description": "/v1/consents/{id}", "schema": {"type": "string"}}}},
    },
)
async def record_consent(
    body: ConsentCreate,
    response: Response,
    principal: ConsentWriter,
    unit_of_work: UnitOfWorkDep,
    request_id: RequestId,
    idempotency_key: IdempotencyKey = None,
) -> ConsentRead:
    consent = await handlers.record_consent(
        unit_of_work,
        principal=principal,
        bsn=body.patient.bsn,
        recipient_types=list(body.recipient_types),
        purpose=body.purpose,
        method=body.method,
        given_at=body.given_at,
        valid_until=body.valid_until,
        risk_domains=list(body.risk_domains) if body.risk_domains is not None else None,
        informed_about=list(body.informed_about),
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint("POST /v1/consents", body),
        request_id=request_id,
    )
    response.headers["Location"] = f"/v1/consents/{consent.id}"
    return ConsentRead.of(consent, today_nl())


@router.post(
    "/_search",
    response_model=ConsentList,
    summary="Find a patient's consents",
    description="The caller's organisation's consents for one patient, newest first. "
    "The BSN goes in the body: it never travels in a URL.",
    responses=problem_responses("validation"),
)
async def search_consents(
    body: ConsentSearch, principal: ConsentReader, unit_of_work: UnitOfWorkDep, request_id: RequestId
) -> ConsentList:
    found = await handlers.search_consents(unit_of_work, principal=principal, bsn=body.bsn, request_id=request_id)
    today = today_nl()
    return ConsentList(items=[ConsentRead.of(c, today) for c in found])


@router.post(
    "/check",
    response_model=ConsentCheckResult,
    summary="May a melding go out under this consent? (services)",
    description="For the platform's services: whether the consent exists, was recorded by `org_id` for "
    "the same BSN, is active and covers every recipient type and (when given) risk domain. `reason` says why not.",
    responses=problem_responses("validation"),
)
async def check_consent(
    body: ConsentCheck, principal: ConsentChecker, unit_of_work: UnitOfWorkDep, request_id: RequestId
) -> ConsentCheckResult:
    reason, consent = await handlers.check_consent(
        unit_of_work,
        principal=principal,
        consent_id=body.consent_id,
        bsn=body.bsn,
        org_id=body.org_id,
        recipient_types=list(body.recipient_types),
        risk_domains=list(body.risk_domains) if body.risk_domains is not None else None,
        request_id=request_id,
    )
    if reason is not None or consent is None:
        return ConsentCheckResult(allowed=False, reason=reason)
    return ConsentCheckResult(allowed=True, consent=scope_of(consent))


@router.get(
    "/{consent_id}",
    response_model=ConsentRead,
    summary="Read a consent",
    description="Only the recording organisation sees a consent; for any other it does not exist (404).",
    responses=problem_responses("not-found"),
)
async def get_consent(
    consent_id: IdInPath, principal: ConsentReader, unit_of_work: UnitOfWorkDep, request_id: RequestId
) -> ConsentRead:
    consent = await handlers.get_consent(
        unit_of_work, principal=principal, consent_id=consent_id, request_id=request_id
    )
    return ConsentRead.of(consent, today_nl())


@router.post(
    "/{consent_id}/withdraw",
    response_model=ConsentRead,
    summary="Withdraw a consent",
    description="From now on nothing more is delivered under this consent, and recipients that received a "
    "melding under it get a retraction. Withdrawing again is 200 and changes nothing.",
    responses=problem_responses("not-found", "validation"),
)
async def withdraw_consent(
    consent_id: IdInPath,
    principal: ConsentWriter,
    unit_of_work: UnitOfWorkDep,
    request_id: RequestId,
    body: ConsentWithdraw | None = None,
) -> ConsentRead:
    consent = await handlers.withdraw_consent(
        unit_of_work,
        principal=principal,
        consent_id=consent_id,
        reason=body.reason if body else None,
        request_id=request_id,
    )
    return ConsentRead.of(consent, today_nl())


@patient_router.get(
    "",
    response_model=ConsentList,
    summary="Her own consents (the woman herself)",
    description="Every consent recorded for the woman the token is bound to (`patient:self`: its `sub` is the "
    "keyed hash of her BSN), by any organisation, newest first. Never another woman's. Her read is audited "
    "with her as the actor.",
    responses=problem_responses(),
)
async def list_patient_consents(patient: Patient, unit_of_work: UnitOfWorkDep, request_id: RequestId) -> ConsentList:
    found = await handlers.list_patient_consents(unit_of_work, patient=patient, request_id=request_id)
    today = today_nl()
    return ConsentList(items=[ConsentRead.of(c, today) for c in found])


@patient_router.post(
    "/{consent_id}/withdraw",
    response_model=ConsentRead,
    summary="Withdraw her own consent (the woman herself)",
    description="The same withdrawal as the recording organisation's (meldingen under it are retracted and their "
    'personal data removed), recorded as `withdrawn_by: {"type": "patient"}`, which the organisation sees '
    "on the consent. Another woman's consent is 404, like a missing one. Withdrawing again is 200 and changes "
    "nothing.",
    responses=problem_responses("not-found"),
)
async def withdraw_patient_consent(
    consent_id: IdInPath, patient: Patient, unit_of_work: UnitOfWorkDep, request_id: RequestId
) -> ConsentRead:
    consent = await handlers.withdraw_patient_consent(
        unit_of_work, patient=patient, consent_id=consent_id, request_id=request_id
    )
    return ConsentRead.of(consent, today_nl())
