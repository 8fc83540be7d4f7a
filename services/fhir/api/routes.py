"""The FHIR R4 facade at `/fhir`: each interaction is one or two calls
to the v1 APIs with the caller's own token; the v1 services decide, store and audit, the facade translates."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.fhir.adapters.queues import declare_events_queue
from services.fhir.adapters.v1 import Answer, Caller, V1Api
from services.fhir.api.deps import TaskFollower, UnitOfWorkDep
from services.fhir.api.outcomes import FhirResponse, fhir_response
from services.fhir.domain import codes, consent, melding
from services.fhir.domain.capability import capability_statement
from services.fhir.domain.formats import Preferences, check_format, etag, preferences
from services.fhir.domain.outcome import FhirError, from_problem, issue, operation_outcome
from services.fhir.domain.resources import emit
from services.fhir.domain.search import TaskSearch
from services.fhir.domain.subscription import status_bundle, subscription_resource
from services.fhir.service_layer import handlers, tasks
from shared.api import IdInPath, RequestId, reads_own_query
from shared.auth import Principal, current_principal
from shared.contracts.base import has_unstorable_text
from shared.edge import expensive
from shared.identifiers import UUID_PATTERN


async def negotiate(
    request: Request,
    format_parameter: Annotated[
        str | None,
        Query(alias="_format", description="json, application/json or application/fhir+json (XML: 406)"),
    ] = None,
) -> None:
    """Every interaction answers FHIR JSON: asking for XML (or anything else) is a 406, not JSON regardless."""
    check_format(format_parameter, request.headers.get("accept"))


router = APIRouter(prefix="/fhir", tags=["fhir"], dependencies=[Depends(negotiate)])

PUBLISHED = "2026-12-07"
UUID = re.compile(UUID_PATTERN)
# A versionId the facade gives out (services.fhir.domain.formats.with_version): anything else names no version.
VersionInPath = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", max_length=16)]
FORM = "application/x-www-form-urlencoded"


async def caller(request: Request, _verified: Annotated[Principal, Depends(current_principal)]) -> Caller:
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
async def create_consent(request: Request, who: CallerDep) -> Response:
    body = consent.consent_create(await _resource_body(request))
    recorded = _checked(await _api(request, "consent").call("POST", "/v1/consents", who, json=body), consent.V1_FIELDS)
    return _written(request, consent.consent_resource(recorded), 201)


@router.get("/Consent", summary="Refused: a BSN never travels in a URL — search with POST Consent/_search")
@reads_own_query
async def search_consents_by_get() -> FhirResponse:
    raise FhirError(
        400, "not-supported", "search Consent with POST Consent/_search (form body): a BSN never travels in a URL"
    )


@router.post("/Consent/_search", summary="Search consents by the patient's BSN (POST /v1/consents/_search)")
@reads_own_query
async def search_consents(request: Request, who: CallerDep) -> FhirResponse:
    if set(request.query_params) - {"_format"}:
        raise FhirError(400, "not-supported", "search parameters go in the form body, not in the URL")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM:
        raise FhirError(415, "not-supported", f"send the search as a form: Content-Type: {FORM}")
    bsn = _bsn_parameter(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    found = _checked(
        await _api(request, "consent").call("POST", "/v1/consents/_search", who, json={"bsn": bsn}),
        {"bsn": "Consent.patient.identifier"},
    )
    consents = [consent.consent_resource(c) for c in found["items"]]
    base = _base(request)
    # a POST search: its self link names the search, not the BSN (which never travels in a URL)
    return fhir_response(_searchset(consents, base, "Consent", f"{base}/Consent/_search", total=len(consents)))


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
    return _read(await _consent(request, who, consent_id))


@router.get("/Consent/{consent_id}/_history/{version_id}", summary="Read a consent's version (the current one)")
async def vread_consent(
    consent_id: IdInPath, version_id: VersionInPath, request: Request, who: CallerDep
) -> FhirResponse:
    return _read(_version(await _consent(request, who, consent_id), version_id))


async def _consent(request: Request, who: Caller, consent_id: str) -> dict[str, Any]:
    return consent.consent_resource(
        _checked(await _api(request, "consent").call("GET", f"/v1/consents/{consent_id}", who))
    )


@router.put("/Consent/{consent_id}", summary="Withdraw a consent: PUT it with status inactive")
async def update_consent(consent_id: IdInPath, request: Request, who: CallerDep) -> Response:
    consent.is_withdrawal(await _resource_body(request), consent_id)
    path = f"/v1/consents/{consent_id}/withdraw"
    withdrawn = _checked(await _api(request, "consent").call("POST", path, who, json={}))
    return _written(request, consent.consent_resource(withdrawn), 200)


# --- the melding: a transaction Bundle, followed as a Task and read as a ServiceRequest ----------------------


@router.post("", summary="A melding as a transaction Bundle (POST /v1/meldingen)")
@router.post("/", include_in_schema=False)  # the base as FHIR clients write it, with its slash
@expensive
async def transaction(request: Request, who: CallerDep) -> FhirResponse:
    sent = melding.melding_request(await _resource_body(request))
    header_key = request.headers.get("idempotency-key")
    answer = await _api(request, "melding").call(
        "POST", "/v1/meldingen", who, json=sent.body, idempotency_key=header_key or sent.bundle_key
    )
    if not header_key and sent.bundle_key and answer.is_problem and _slug(answer.body) == "idempotency-conflict":
        raise FhirError(
            409,
            "duplicate",
            "this Bundle.identifier was sent before with another Bundle: a new melding needs an identifier of its own",
            "Bundle.identifier",
        )
    accepted = _checked(answer, melding.V1_FIELDS)
    return fhir_response(melding.transaction_response(accepted, sent.entry_types))


def _slug(problem: Any) -> str:
    return str(problem.get("type", "")).rsplit(":", 1)[-1] if isinstance(problem, dict) else ""


@router.get("/ServiceRequest/{service_request_id}", summary="A melding as the ServiceRequest the transaction made")
async def read_service_request(service_request_id: IdInPath, request: Request, who: CallerDep) -> FhirResponse:
    return _read(melding.service_request_resource(await _melding(request, who, service_request_id)))


@router.get(
    "/ServiceRequest/{service_request_id}/_history/{version_id}", summary="A ServiceRequest's version (the current)"
)
async def vread_service_request(
    service_request_id: IdInPath, version_id: VersionInPath, request: Request, who: CallerDep
) -> FhirResponse:
    resource = melding.service_request_resource(await _melding(request, who, service_request_id))
    return _read(_version(resource, version_id))


@router.get("/Task/{task_id}", summary="Where a melding stands, as its Task")
async def read_task(task_id: IdInPath, request: Request, who: CallerDep) -> FhirResponse:
    return _read(melding.task_resource(await _melding(request, who, task_id)))


@router.get("/Task/{task_id}/_history/{version_id}", summary="A Task's version (the current one)")
async def vread_task(task_id: IdInPath, version_id: VersionInPath, request: Request, who: CallerDep) -> FhirResponse:
    return _read(_version(melding.task_resource(await _melding(request, who, task_id)), version_id))


async def _melding(request: Request, who: Caller, melding_id: str) -> dict[str, Any]:
    found: dict[str, Any] = _checked(await _api(request, "melding").call("GET", f"/v1/meldingen/{melding_id}", who))
    return found


@router.get(
    "/Task",
    summary="Search your Tasks: status, _lastUpdated, _id, _count, _summary=count, _total",
    description="Unknown parameters are a 400 unless `Prefer: handling=lenient`, which ignores them (the "
    "Bundle's self link leaves them out).",
)
@reads_own_query
@expensive
async def search_tasks(request: Request, who: CallerDep) -> FhirResponse:
    search = TaskSearch.of(
        request.query_params.multi_items(), lenient=preferences(request.headers.get("prefer")).lenient
    )
    api = _api(request, "melding")

    async def list_page(params: dict[str, Any]) -> dict[str, Any]:
        page: dict[str, Any] = _checked(await api.call("GET", "/v1/meldingen", who, params=params))
        return page

    async def read_one(melding_id: str) -> dict[str, Any] | None:
        if not UUID.match(melding_id):
            return None  # not an id the platform gives out: no such Task
        answer = await api.call("GET", f"/v1/meldingen/{melding_id}", who)
        if answer.status == 404:
            return None
        found: dict[str, Any] = _checked(answer)
        return found

    page = await tasks.search_tasks(search, list_page=list_page, read_one=read_one)
    base = _base(request)
    next_url = f"{base}/Task?{urlencode(search.query(cursor=page.next_cursor))}" if page.next_cursor else None
    bundle = _searchset(
        page.tasks, base, "Task", f"{base}/Task?{urlencode(search.query())}", total=page.total, next_url=next_url
    )
    if search.ignored:
        bundle = _with_outcome(
            bundle, f"{search.ignored} search parameter(s) ignored (Prefer: handling=lenient); the self link omits them"
        )
    return fhir_response(bundle)


@router.post("/Task/{task_id}/$cancel", summary="Cancel a melding (POST /v1/meldingen/{id}/cancel)")
async def cancel_task(task_id: IdInPath, request: Request, who: CallerDep) -> FhirResponse:
    reason = melding.cancel_reason(await _resource_body(request))
    path = f"/v1/meldingen/{task_id}/cancel"
    cancelled = _checked(
        await _api(request, "melding").call("POST", path, who, json={"reason": reason}),
        {"reason": "Parameters.parameter.value"},
    )
    return _read(melding.task_resource(cancelled))


# --- reads and writes as FHIR clients expect them ----------------------------------------------------------


def _read(resource: dict[str, Any]) -> FhirResponse:
    """A resource as read: its version as a weak ETag, its lastUpdated as Last-Modified."""
    return fhir_response(resource, 200, _version_headers(resource))


def _version_headers(resource: dict[str, Any]) -> dict[str, str]:
    updated = datetime.fromisoformat(resource["meta"]["lastUpdated"].replace("Z", "+00:00"))
    return {"ETag": etag(resource), "Last-Modified": format_datetime(updated.astimezone(UTC), usegmt=True)}


def _version(resource: dict[str, Any], version_id: str) -> dict[str, Any]:
    """The facade keeps no history: the current version is read by its id, an earlier one is gone."""
    if resource["meta"]["versionId"] != version_id:
        raise FhirError(404, "not-found", "only the current version of this resource is kept")
    return resource


def _written(request: Request, resource: dict[str, Any], status: int) -> Response:
    """The answer to a create or an update: the absolute Location of the version written, its ETag, and the
    body `Prefer: return=` asks for (minimal: none; OperationOutcome; representation, the default)."""
    location = f"{_base(request)}/{resource['resourceType']}/{resource['id']}/_history/{resource['meta']['versionId']}"
    headers = {"Location": location, **_version_headers(resource)}
    wanted: Preferences = preferences(request.headers.get("prefer"))
    if wanted.returns == "minimal":
        return Response(status_code=status, headers=headers)
    if wanted.returns == "OperationOutcome":
        done = "created" if status == 201 else "updated"
        outcome = operation_outcome([issue("informational", f"{resource['resourceType']} {done}")])
        outcome["issue"][0]["severity"] = "information"
        return fhir_response(outcome, status, headers)
    return fhir_response(resource, status, headers)


# --- Subscriptions (R4 Backport, rest-hook, id-only) ----------------------------------------------------------


@router.post("/Subscription", status_code=201, summary="Be told of every status change of your Tasks")
async def create_subscription(
    request: Request, principal: TaskFollower, unit_of_work: UnitOfWorkDep, request_id: RequestId
) -> FhirResponse:
    data = await _resource_body(request)
    await declare_events_queue(request.app.state.broker)
    view = await handlers.create_subscription(
        unit_of_work, data, principal=principal, settings=request.app.state.settings, request_id=request_id
    )
    return fhir_response(subscription_resource(view), 201, {"Location": f"Subscription/{view.id}"})


@router.get("/Subscription/{subscription_id}", summary="A Subscription and its status (error: why)")
async def read_subscription(
    subscription_id: IdInPath, principal: TaskFollower, unit_of_work: UnitOfWorkDep
) -> FhirResponse:
    view = await handlers.read_subscription(unit_of_work, subscription_id, principal=principal)
    return fhir_response(subscription_resource(view))


@router.get("/Subscription/{subscription_id}/$status", summary="A Subscription's status (R4 Backport $status)")
async def subscription_status(
    subscription_id: IdInPath, principal: TaskFollower, unit_of_work: UnitOfWorkDep, request: Request
) -> FhirResponse:
    view = await handlers.read_subscription(unit_of_work, subscription_id, principal=principal)
    return fhir_response(status_bundle(view, _base(request), now=datetime.now(UTC)))


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
    resources: list[dict[str, Any]],
    base: str,
    kind: str,
    self_url: str,
    *,
    total: int | None,
    next_url: str | None = None,
) -> dict[str, Any]:
    """A searchset Bundle: its `self` link (and `next`, when there is a next page), `total` when known."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "link": [{"relation": "self", "url": self_url}] + ([{"relation": "next", "url": next_url}] if next_url else []),
    }
    if total is not None:
        bundle["total"] = total
    if resources:
        bundle["entry"] = [
            {"fullUrl": f"{base}/{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in resources
        ]
    return emit(bundle)


def _with_outcome(bundle: dict[str, Any], diagnostics: str) -> dict[str, Any]:
    """`bundle` with an OperationOutcome entry (search mode outcome): a warning about the search itself."""
    outcome = operation_outcome([issue("informational", diagnostics)])
    outcome["issue"][0]["severity"] = "warning"
    entry = {"resource": outcome, "search": {"mode": "outcome"}}
    return emit({**bundle, "entry": [*bundle.get("entry", []), entry]})
