"""Building blocks every service's API uses: request id, audit endpoint, common field types."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, cast

import httpx
import structlog
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from shared.audit import ACTIONS, AuditQuery, AuditTables, list_records, record_access
from shared.auth import OPERATOR_TYPES, Principal, require_scope
from shared.clients.consent import ConsentClient
from shared.clock import Instant
from shared.contracts.base import has_unstorable_text
from shared.db import Database
from shared.errors import Forbidden, Unavailable, UnsupportedMediaType
from shared.identifiers import ORG_ID_PATTERN, UUID_PATTERN, Bsn
from shared.observability import REQUEST_ID_HEADER
from shared.pagination import decode_cursor, encode_cursor
from shared.problems import problem_responses

log = structlog.get_logger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# A path id that is not of the form the platform gives out names nothing that exists: 404, as an unknown id
# (shared.problems answers path validation errors so), and it never reaches the database.
IdInPath = Annotated[
    str,
    Path(
        pattern=UUID_PATTERN,
        max_length=36,
        description="a UUID the platform gave out",
        examples=["6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10"],
    ),
]
CursorQuery = Annotated[
    str | None,
    Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$", description="the `next_cursor` of the page before (opaque)"),
]
OrgIdInPath = Annotated[
    str,
    Path(
        pattern=ORG_ID_PATTERN,
        max_length=64,
        examples=["12345678"],
        description="the organisation's URA (or another id of letters, digits, `._-`)",
    ),
]


def _query_parameters(dependant: Dependant) -> set[str]:
    """The query parameters a route reads, its dependencies' included."""
    names = {field.alias for field in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_parameters(dependency)
    return names


_KNOWN_QUERY: dict[int, frozenset[str]] = {}
_READS_OWN_QUERY: set[Callable[..., Any]] = set()


def reads_own_query(endpoint: F) -> F:
    """Mark a route that reads its query string itself (FHIR search parameters such as `patient:identifier`
    are no Python names): the unknown-parameter check leaves it to the route; the NUL check still holds."""
    _READS_OWN_QUERY.add(endpoint)
    return endpoint


async def reject_unknown_query_parameters(request: Request) -> None:
    """A query parameter the route does not know is a 422, as an unknown body field is: a misspelt filter
    (`?stauts=withdrawn`) must not silently answer everything."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    unstorable = sorted(
        {
            name
            for name, value in request.query_params.multi_items()
            if has_unstorable_text(name) or has_unstorable_text(value)
        }
    )
    if unstorable:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", name),
                    "input": None,
                    "msg": "must not contain a NUL character",
                }
                for name in unstorable
            ]
        )
    if route.endpoint in _READS_OWN_QUERY:
        return
    known = _KNOWN_QUERY.get(id(route))
    if known is None:
        known = _KNOWN_QUERY[id(route)] = frozenset(_query_parameters(route.dependant))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("query", name), "input": None, "msg": "unknown query parameter"}
                for name in unknown
            ]
        )


async def require_json_body(request: Request) -> None:
    """A body sent to a route that reads JSON must say it is JSON (`application/json` or `…+json`): anything
    else is a 415 naming what to send, not a 422 about a field the client never meant to send."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return
    headers = request.headers
    if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
        return  # no body: an optional one is absent, a required one is a 422 naming `body`
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise UnsupportedMediaType("this endpoint reads JSON: send the body with Content-Type: application/json")


async def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


RequestId = Annotated[str | None, Depends(request_id)]


async def unit_of_work(request: Request) -> Any:
    """The service's factory of its units of work (built once in `create_app()`); each service's `api/deps.py`
    gives it its own type: `Annotated[UnitOfWorkFactory, Depends(unit_of_work)]`. `async`, like every
    dependency here: FastAPI runs a plain `def` in its thread pool, a thread hop on every request."""
    return request.app.state.unit_of_work


async def consent_client(request: Request) -> ConsentClient:
    """The consent service's client, in services that check consent (see `shared.app.attach_consent_client`)."""
    return cast(ConsentClient, request.app.state.runtime.consent)


ConsentClientDep = Annotated[ConsentClient, Depends(consent_client)]


class AuditRecord(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b6f2d1e-8c41-4c55-9a7e-3f1c2a9e7d1b",
                    "chain": 3,
                    "seq": 1187,
                    "at": "2026-11-20T10:16:40Z",
                    "service": "melding",
                    "actor_sub": "m.jansen",
                    "actor_org_id": "12345678",
                    "actor_org_type": "verloskundige",
                    "action": "read",
                    "resource_type": "melding",
                    "resource_id": "2d7a6f0c-1c1e-4f7e-9c1e-0d7f3b2a9e10",
                    "patient_bsn": "999999990",
                    "outcome": "success",
                    "consent_checked": None,
                    "request_id": "3f1c2a9e7d1b4c559a7e0b6f2d1e8c41",
                    "prev_hash": "9c1e0d7f3b2a9e106f0c1c1e2d7a4f7e9c1e0d7f3b2a9e106f0c1c1e2d7a4f7e",
                    "hash": "4c559a7e0b6f2d1e8c413f1c2a9e7d1b4c559a7e0b6f2d1e8c413f1c2a9e7d1b",
                }
            ]
        }
    )

    id: str
    chain: int = Field(description="which of this service's hash chains the record is on")
    seq: int = Field(description="position in its chain")
    at: datetime
    service: str = Field(examples=["melding"])
    actor_sub: str
    actor_org_id: str
    actor_org_type: str
    action: str = Field(examples=["read"], description="one of: " + ", ".join(ACTIONS))
    resource_type: str = Field(examples=["melding"])
    resource_id: str | None
    patient_bsn: str | None
    outcome: str = Field(examples=["success"])
    consent_checked: bool | None = Field(description="whether a consent check passed (null: none was made)")
    request_id: str | None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditRecord]
    next_cursor: str | None = Field(None, description="`cursor` for the next page, if there is one")


class AuditSearch(BaseModel):
    """Who accessed this patient's data, across the consent, melding and routing services."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"bsn": "999999990"}]})

    bsn: Bsn
    since: Instant | None = None
    until: Instant | None = None
    services: list[Literal["consent", "melding", "routing"]] | None = Field(
        None, description="only these services' logs (default: all three)"
    )


class AuditSearchResult(BaseModel):
    items: list[AuditRecord] = Field(description="every service's records for the patient, oldest first")
    services: list[str] = Field(
        description="the services whose logs were searched", examples=[["consent", "melding", "routing"]]
    )


AUDIT_SEARCH_LIMIT = 10_000
Auditor = Annotated[Principal, Depends(require_scope("audit:read"))]
AuditAction = Literal[ACTIONS]  # type: ignore[valid-type]


def audit_router(tables: AuditTables) -> APIRouter:
    """`GET /v1/audit` and `POST /v1/audit/_search` over a service's own audit log (and its peers')."""
    router = APIRouter(tags=["audit"])

    @router.get(
        "/v1/audit",
        response_model=AuditPage,
        summary="Read the audit log",
        description="One record per access to personal data (the fields of NEN 7513), oldest first, each "
        "with the hash of the one before it on its chain. Append-only. Filter by time range, "
        "acting organisation and action; page with `cursor`. Needs the scope `audit:read`; the read is audited too. "
        "Operators read every record; any other organisation only the records of its own accesses.",
        responses=problem_responses("validation"),
    )
    async def read_audit(
        request: Request,
        principal: Auditor,
        request_id: RequestId,
        since: Annotated[Instant | None, Query(description="only records at or after this time (with offset)")] = None,
        until: Annotated[Instant | None, Query(description="only records before this time (with offset)")] = None,
        org_id: Annotated[str | None, Query(description="only accesses by this organisation", max_length=64)] = None,
        action: Annotated[AuditAction | None, Query(description="only this action")] = None,
        cursor: CursorQuery = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> AuditPage:
        database: Database = request.app.state.database
        query = AuditQuery(
            since=since,
            until=until,
            org_id=_visible_org(principal, org_id),
            action=action,
            limit=limit + 1,
            after=decode_cursor(cursor) if cursor else None,
        )
        async with database.unit_of_work() as uow:
            records = await list_records(uow, tables, query)
            record_access(
                uow,
                tables,
                service=_service(request),
                principal=principal,
                action="read",
                resource_type="audit_log",
                resource_id=None,
                patient_bsn=None,
                request_id=request_id,
            )
            await uow.commit()
        more = len(records) > limit
        records = records[:limit]
        return AuditPage(
            items=[AuditRecord(**r) for r in records],
            next_cursor=encode_cursor(records[-1]["at"], records[-1]["id"]) if more else None,
        )

    @router.post(
        "/v1/audit/_search",
        response_model=AuditSearchResult,
        summary="Who accessed this patient's data?",
        description="Every audit record naming the patient, from the consent, melding and routing services "
        "(this service asks the others with the caller's token), oldest first. The BSN travels in the body, "
        "never in a URL. The search is audited in each service. 503 if a service's log cannot be read: an "
        "incomplete answer to this question would mislead. Needs the scope `audit:read`.",
        responses=problem_responses("validation", "unavailable"),
    )
    async def search_audit(
        request: Request, principal: Auditor, request_id: RequestId, body: AuditSearch
    ) -> AuditSearchResult:
        me = _service(request)
        wanted = body.services or ["consent", "melding", "routing"]
        items: list[AuditRecord] = []
        if me in wanted:
            database: Database = request.app.state.database
            query = AuditQuery(
                since=body.since,
                until=body.until,
                patient_ref=database.cipher.bsn_ref(body.bsn),
                org_id=_visible_org(principal, None),
                limit=AUDIT_SEARCH_LIMIT,
            )
            async with database.unit_of_work() as uow:
                items += [AuditRecord(**r) for r in await list_records(uow, tables, query)]
                record_access(
                    uow,
                    tables,
                    service=me,
                    principal=principal,
                    action="search",
                    resource_type="audit_log",
                    resource_id=None,
                    patient_bsn=body.bsn,
                    request_id=request_id,
                )
                await uow.commit()
        peers: dict[str, str] = request.app.state.runtime.settings.audit_peers
        for peer in (p for p in wanted if p != me):
            items += await _search_peer(peer, peers.get(peer), request, body, request_id)
        items.sort(key=lambda r: (r.at, r.service, r.id))
        return AuditSearchResult(items=items, services=sorted(wanted))

    return router


def _visible_org(principal: Principal, org_id: str | None) -> str | None:
    """Whose accesses the caller may read: an operator anyone's (`org_id` filters), others their own only."""
    if principal.org_type in OPERATOR_TYPES:
        return org_id
    if org_id not in (None, principal.org_id):
        raise Forbidden("your organisation may read only the records of its own accesses")
    return principal.org_id


def _service(request: Request) -> str:
    return str(request.app.state.runtime.settings.service_name)


async def _search_peer(
    peer: str, base_url: str | None, request: Request, body: AuditSearch, request_id: str | None
) -> list[AuditRecord]:
    if not base_url:
        raise Unavailable(f"the {peer} service's audit log is not configured (KANSRIJK_AUDIT_PEERS)")
    headers = {"Authorization": request.headers["authorization"]}
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    payload = body.model_copy(update={"services": [peer]}).model_dump(mode="json")
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
            response = await client.post("/v1/audit/_search", json=payload, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("audit_peer_unreachable", peer=peer, error_type=type(exc).__name__)
        raise Unavailable(f"the {peer} service's audit log could not be searched; retry later") from exc
    if response.status_code != 200:
        log.warning("audit_peer_refused", peer=peer, status=response.status_code)
        raise Unavailable(
            f"the {peer} service's audit log could not be searched (it answered {response.status_code}); retry later"
        )
    return [AuditRecord(**r) for r in response.json()["items"]]
