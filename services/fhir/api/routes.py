"""The FHIR R4 facade at `/fhir` (CONTRACT.md v1.1, "FHIR R4 facade"): each interaction is one or two calls
to the v1 APIs with the caller's own token; the v1 services decide, store and audit, the facade translates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Request, Response

from services.fhir.adapters.queues import declare_events_queue
from services.fhir.adapters.v1 import Answer, Caller, V1Api
from services.fhir.api.deps import TaskFollower, UnitOfWorkDep
from services.fhir.api.outcomes import FhirResponse, fhir_response
from services.fhir.domain import codes, consent, melding
from services.fhir.domain.capability import capability_statement
from services.fhir.domain.outcome import FhirError, from_problem
from services.fhir.domain.resources import emit
from services.fhir.domain.search import TaskSearch
from services.fhir.domain.subscription import subscription_resource
from services.fhir.service_layer import handlers
from shared.api import IdInPath, RequestId, reads_own_query
from shared.auth import Principal, current_principal
from shared.contracts.base import has_unstorable_text
from shared.edge import expensive

router = APIRouter(prefix="/fhir", tags=["fhir"])

PUBLISHED = "2026-12-02"
FORM = "application/x-www-form-urlencoded"


def caller(request: Request, _verified: Annotated[Principal, Depends(current_principal)]) -> Caller:
    """The caller's token, passed on to the v1 APIs; verified here first (shared.edge: before the body is
    read), so that no unauthenticated request costs the facade a parse."""
    return Caller(request.headers.get("authorization"), getattr(request.state, "request_id", None))


CallerDep = Annotated[Caller, Depends(caller)]


def _api(request: Request, name: str) -> V1Api:
    api: V1Api = getattr(request.app.state, f"{name}_api")
    return api


async def _resource_body(request: Request) -> Any:
    """The request's FHIR JSON (`application/fhir+json` or `application/json`)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in (codes.FHIR_JSON, "application/json"):
        raise FhirError(415, "not-supported", f"send FHIR JSON: Content-Type: {codes.FHIR_JSON}")
    try:
        data = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise FhirError(400, "structure", "the body is not valid JSON") from None
    if has_unstorable_text(data):  # refused alike on SQLite and PostgreSQL, before anything is stored
        raise FhirError(422, "invalid", "text in the body holds a NUL character or an unpaired surrogate")
    return data


def _passed_on(answer: Answer, fields: dict[str, str] | None = None) -> FhirError | None:
    """A v1 error, as the facade answers it: its status, an OperationOutcome."""
    if answer.ok:
        return None
    problem = answer.body if answer.is_problem and isinstance(answer.body, dict) else {"type": "internal"}
    return _Passed(answer.status, from_problem(problem, fields))


class _Passed(FhirError):
    def __init__(self, status: int, outcome: dict[str, Any]) -> None:
        super().__init__(status, "exception", "")
        self._outcome = outcome

    def outcome(self) -> dict[str, Any]:
        return self._outcome


def _checked(answer: Answer, fields: dict[str, str] | None = None) -> Any:
    if error := _passed_on(answer, fields):
        raise error
    return answer.body


# --- metadata ------------------------------------------------------------------------------------------------


@router.get("/metadata", summary="CapabilityStatement: what this FHIR endpoint supports (no token needed)")
async def metadata(request: Request) -> FhirResponse:
    return fhir_response(capability_statement(_base(request), PUBLISHED))


# --- Consent -------------------------------------------------------------------------------------------------


@router.post("/Consent", status_code=201, summary="Record a consent (POST /v1/consents)")
async def create_consent(request: Request, who: CallerDep) -> FhirResponse:
    body = consent.consent_create(await _resource_body(request))
    recorded = _checked(await _api(request, "consent").call("POST", "/v1/consents", who, json=body), consent.V1_FIELDS)
    return fhir_response(consent.consent_resource(recorded), 201, {"Location": f"Consent/{recorded['id']}"})


@router.get("/Consent", summary="Refused: a BSN never travels in a URL — search with POST Consent/_search")
@reads_own_query
async def search_consents_by_get() -> FhirResponse:
    raise FhirError(
        400, "not-supported", "search Consent with POST Consent/_search (form body): a BSN never travels in a URL"
    )


@router.post("/Consent/_search", summary="Search consents by the patient's BSN (POST /v1/consents/_search)")
@reads_own_query
async def search_consents(request: Request, who: CallerDep) -> FhirResponse:
    if request.query_params:
        raise FhirError(400, "not-supported", "search parameters go in the form body, not in the URL")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM:
        raise FhirError(415, "not-supported", f"send the search as a form: Content-Type: {FORM}")
    bsn = _bsn_parameter(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    found = _checked(
        await _api(request, "consent").call("POST", "/v1/consents/_search", who, json={"bsn": bsn}),
        {"bsn": "Consent.patient.identifier"},
    )
    return fhir_response(_searchset([consent.consent_resource(c) for c in found["items"]], _base(request), "Consent"))


def _bsn_parameter(pairs: list[tuple[str, str]]) -> str:
    names = {name for name, _ in pairs}
    if names != {"patient:identifier"} or len(pairs) != 1:
        raise FhirError(400, "not-supported", "search Consent by patient:identifier (one BSN) and nothing else")
    system, _, value = pairs[0][1].rpartition("|")
    if system != codes.BSN_SYSTEM:
        raise FhirError(400, "code-invalid", f"patient:identifier is {codes.BSN_SYSTEM}|<BSN>")
    return value


@router.get("/Consent/{consent_id}", summary="Read a consent")
async def read_consent(consent_id: IdInPath, request: Request, who: CallerDep) -> FhirResponse:
    found = _checked(await _api(request, "consent").call("GET", f"/v1/consents/{consent_id}", who))
    return fhir_response(consent.consent_resource(found))


@router.put("/Consent/{consent_id}", summary="Withdraw a consent: PUT it with status inactive")
async def update_consent(consent_id: IdInPath, request: Request, who: CallerDep) -> FhirResponse:
    consent.is_withdrawal(await _resource_body(request), consent_id)
    path = f"/v1/consents/{consent_id}/withdraw"
    withdrawn = _checked(await _api(request, "consent").call("POST", path, who, json={}))
    return fhir_response(consent.consent_resource(withdrawn))


# --- the melding: a transaction Bundle, followed as a Task ---------------------------------------------------


@router.post("", summary="A melding as a transaction Bundle (POST /v1/meldingen)")
@expensive
async def transaction(request: Request, who: CallerDep) -> FhirResponse:
    sent = melding.melding_request(await _resource_body(request))
    key = request.headers.get("idempotency-key") or sent.bundle_key
    answer = await _api(request, "melding").call("POST", "/v1/meldingen", who, json=sent.body, idempotency_key=key)
    accepted = _checked(answer, melding.V1_FIELDS)
    return fhir_response(melding.transaction_response(accepted["id"], sent.entry_types))


@router.get("/Task/{task_id}", summary="Where a melding stands, as its Task")
async def read_task(task_id: IdInPath, request: Request, who: CallerDep) -> FhirResponse:
    found = _checked(await _api(request, "melding").call("GET", f"/v1/meldingen/{task_id}", who))
    return fhir_response(melding.task_resource(found))


@router.get("/Task", summary="Search your Tasks by status and _lastUpdated")
@reads_own_query
@expensive
async def search_tasks(request: Request, who: CallerDep) -> FhirResponse:
    search = TaskSearch.of(request.query_params.multi_items())
    params: dict[str, Any] = {"limit": search.count}
    if search.cursor:
        params["cursor"] = search.cursor
    page = _checked(await _api(request, "melding").call("GET", "/v1/meldingen", who, params=params))
    tasks = [melding.task_resource(m) for m in page["items"]]
    base = _base(request)
    links = [{"relation": "self", "url": f"{base}/Task?{urlencode(search.query())}"}]
    if page.get("next_cursor"):
        links.append({"relation": "next", "url": f"{base}/Task?{urlencode(search.query(cursor=page['next_cursor']))}"})
    return fhir_response(_searchset([t for t in tasks if search.matches(t)], base, "Task", links))


@router.post("/Task/{task_id}/$cancel", summary="Cancel a melding (POST /v1/meldingen/{id}/cancel)")
async def cancel_task(task_id: IdInPath, request: Request, who: CallerDep) -> FhirResponse:
    reason = melding.cancel_reason(await _resource_body(request))
    path = f"/v1/meldingen/{task_id}/cancel"
    cancelled = _checked(
        await _api(request, "melding").call("POST", path, who, json={"reason": reason}),
        {"reason": "Parameters.parameter.value"},
    )
    return fhir_response(melding.task_resource(cancelled))


# --- Subscriptions (R4 Backport, rest-hook, id-only) ----------------------------------------------------------


@router.post("/Subscription", status_code=201, summary="Be told of every status change of your Tasks")
async def create_subscription(
    request: Request, principal: TaskFollower, unit_of_work: UnitOfWorkDep, request_id: RequestId
) -> FhirResponse:
    data = await _resource_body(request)
    await declare_events_queue(request.app.state.broker)
    allow_http = request.app.state.settings.is_development
    view = await handlers.create_subscription(
        unit_of_work, data, principal=principal, allow_http=allow_http, request_id=request_id
    )
    return fhir_response(subscription_resource(view), 201, {"Location": f"Subscription/{view.id}"})


@router.get("/Subscription/{subscription_id}", summary="A Subscription and its status (error: why)")
async def read_subscription(
    subscription_id: IdInPath, principal: TaskFollower, unit_of_work: UnitOfWorkDep
) -> FhirResponse:
    view = await handlers.read_subscription(unit_of_work, subscription_id, principal=principal)
    return fhir_response(subscription_resource(view))


@router.delete("/Subscription/{subscription_id}", status_code=204, summary="End a Subscription")
async def delete_subscription(
    subscription_id: IdInPath, principal: TaskFollower, unit_of_work: UnitOfWorkDep, request_id: RequestId
) -> Response:
    await handlers.delete_subscription(unit_of_work, subscription_id, principal=principal, request_id=request_id)
    return Response(status_code=204)


def _base(request: Request) -> str:
    """The facade's base URL as EHRs reach it (`KANSRIJK_PUBLIC_URL`), not as this process was reached:
    behind an ingress that is an internal address. The notifications use the same."""
    return str(request.app.state.settings.public_url).rstrip("/")


def _searchset(
    resources: list[dict[str, Any]], base: str, kind: str, links: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """A searchset Bundle; with `links` one page of several (no total), else every match (the total)."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if links:
        bundle["link"] = links
    else:
        bundle["total"] = len(resources)
    if resources:
        bundle["entry"] = [
            {"fullUrl": f"{base}/{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in resources
        ]
    return emit(bundle)
