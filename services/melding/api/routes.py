"""HTTP routes of the melding service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.melding.api.deps import (
    ConsentClientDep,
    ConsentMaxLag,
    IntakeDep,
    MeldingReader,
    MeldingWriter,
    Patient,
    UnitOfWorkDep,
)
from services.melding.api.schemas import (
    ACCEPTED_EXAMPLE,
    MeldingCancel,
    MeldingCreate,
    MeldingPage,
    MeldingRead,
    MeldingSeenList,
)
from services.melding.domain.model import MeldingStatus
from services.melding.service_layer import handlers
from services.melding.service_layer.views import MeldingView, MeldingViewPage
from shared.api import CursorQuery, IdInPath, RequestId
from shared.clock import Instant
from shared.contracts.melding import MeldingContent
from shared.idempotency import IdempotencyKey, fingerprint
from shared.problems import problem_responses

router = APIRouter(prefix="/v1/meldingen", tags=["meldingen"])
patient_router = APIRouter(prefix="/v1/self/meldingen", tags=["her own view"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MeldingRead,
    summary="Send a melding",
    description="Checks the patient's consent with the consent service, stores the melding and hands it to "
    "routing, which delivers it to the JGZ organisation and/or wijkteam serving the patient's address. "
    "The sender comes from the token. 403 `consent-required` when the consent does not allow it; 503 when "
    "the consent service cannot answer — retry with the same `Idempotency-Key`; 409 `conflict` (with "
    "`existing`) when your organisation has an open melding for this patient and one of these recipient "
    "types — send the melding for the other type alone. Nothing is stored on any error.",
    responses={
        **problem_responses("validation", "consent-required", "idempotency-conflict", "conflict", "unavailable"),
        202: {
            "headers": {"Location": {"description": "/v1/meldingen/{id}", "schema": {"type": "string"}}},
            "content": {"application/json": {"example": ACCEPTED_EXAMPLE}},
        },
    },
)
async def send_melding(
    body: MeldingCreate,
    response: Response,
    principal: MeldingWriter,
    intake: IntakeDep,
    consent_client: ConsentClientDep,
    consent_max_lag: ConsentMaxLag,
    request_id: RequestId,
    idempotency_key: IdempotencyKey = None,
) -> MeldingView:
    content = MeldingContent.model_validate(body.model_dump(exclude={"consent_id"}), context={"stored": True})
    sent = await handlers.send_melding(
        intake,
        consent_client,
        principal=principal,
        consent_id=body.consent_id,
        content=content,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint("POST /v1/meldingen", body),
        request_id=request_id,
        consent_max_lag=consent_max_lag,
    )
    response.headers["Location"] = f"/v1/meldingen/{sent.melding.record.id}"
    return sent.melding


@router.get(
    "",
    response_model=MeldingPage,
    summary="List your meldingen",
    description="The caller's organisation's meldingen, newest first; pass `next_cursor` back as `cursor`. "
    "`status` (repeatable: any of them) and `updated_since` (last changed at or after, with offset) filter "
    "before the page is cut, so a page holds `limit` matches unless it is the last.",
    responses=problem_responses("validation"),
)
async def list_meldingen(
    principal: MeldingReader,
    unit_of_work: UnitOfWorkDep,
    request_id: RequestId,
    status_filter: Annotated[
        list[MeldingStatus] | None,
        Query(alias="status", description="only meldingen in one of these statuses (repeat the parameter)"),
    ] = None,
    updated_since: Annotated[
        Instant | None, Query(description="only meldingen last changed at or after this time (with offset)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorQuery = None,
) -> MeldingViewPage:
    return await handlers.list_meldingen(
        unit_of_work,
        principal=principal,
        statuses=frozenset(status_filter or ()),
        updated_since=updated_since,
        cursor=cursor,
        limit=limit,
        request_id=request_id,
    )


@router.get(
    "/{melding_id}",
    response_model=MeldingRead,
    summary="Read a melding and where it stands",
    description="Status, deliveries with each recipient's status, and the history. Sender organisation only.",
    responses=problem_responses("not-found"),
)
async def get_melding(
    melding_id: IdInPath, principal: MeldingReader, unit_of_work: UnitOfWorkDep, request_id: RequestId
) -> MeldingView:
    view = await handlers.get_melding(unit_of_work, principal=principal, melding_id=melding_id, request_id=request_id)
    return view


@router.post(
    "/{melding_id}/cancel",
    response_model=MeldingRead,
    summary="Cancel a melding",
    description="The sender takes its melding back (the pregnancy ended, sent in error, the patient moved): "
    "nothing more is delivered, every recipient that has it gets `melding.retracted` with reason "
    "`cancelled-by-sender` and the `cancel_reason`, and its personal data is removed at once. Cancelling "
    "twice is 200 and changes nothing. Sender organisation only.",
    responses=problem_responses("not-found", "validation"),
)
async def cancel_melding(
    melding_id: IdInPath,
    body: MeldingCancel,
    principal: MeldingWriter,
    unit_of_work: UnitOfWorkDep,
    request_id: RequestId,
) -> MeldingView:
    view = await handlers.cancel_melding(
        unit_of_work, principal=principal, melding_id=melding_id, reason=body.reason, request_id=request_id
    )
    return view


@patient_router.get(
    "",
    response_model=MeldingSeenList,
    summary="The meldingen about her (the woman herself)",
    description="Every melding sent under a consent of the woman the `patient:self` token is bound to (the consent "
    "service says which are hers, asked with her token): sender organisation, date, status, and per recipient "
    "organisation its name, status, the risk domains and note it received, contact date and outcome. A cancelled "
    "or withdrawn melding shows that it was, without content. Never another woman's. Audited with her as actor.",
    responses=problem_responses("unavailable"),
)
async def list_patient_meldingen(
    patient: Patient, unit_of_work: UnitOfWorkDep, consent_client: ConsentClientDep, request_id: RequestId
) -> MeldingSeenList:
    seen = await handlers.list_patient_meldingen(unit_of_work, consent_client, patient=patient, request_id=request_id)
    return MeldingSeenList(items=list(seen))
