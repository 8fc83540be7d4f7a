"""HTTP routes of the routing service: the directory and operations (operators), deliveries (recipients)."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query, Response, status

from services.routing.adapters.queues import declare_organisation_queue
from services.routing.api.deps import (
    Admin,
    BrokerDep,
    ConsentClientDep,
    DeliveryReader,
    DeliveryWriter,
    PublicBrokerDep,
    UnitOfWorkDep,
)
from services.routing.api.schemas import (
    DeadLetterList,
    DeadLetterRead,
    DeliveryDocument,
    DeliveryPage,
    GemeenteList,
    GemeentePut,
    GemeenteRead,
    OrganisationList,
    OrganisationPut,
    OrganisationRead,
    OverdueList,
    RecipientMessagesPage,
    RecipientQueueRead,
    Reroute,
    RerouteResult,
    RouteMapRead,
    RouteMapVersions,
    RoutePreview,
    StatusReport,
    StillWaiting,
    UnroutableList,
    risk_domains_in,
)
from services.routing.domain.model import DeadLetter
from services.routing.service_layer import commands, directory, operations, queries
from services.routing.service_layer.route_map_input import RouteMapPut
from services.routing.service_layer.views import (
    GemeenteView,
    Items,
    OrganisationView,
    OverdueView,
    Page,
    RecipientMessagesView,
    RecipientQueueView,
    RouteMapVersionsView,
    RouteMapView,
    RoutePreviewView,
    UnroutableView,
)
from shared.api import CursorQuery, IdInPath, OrgIdInPath, RequestId
from shared.contracts.vocabulary import DeliveryStatus
from shared.edge import expensive
from shared.identifiers import GemeenteCode, Postcode
from shared.problems import problem_responses

log = structlog.get_logger(__name__)
router = APIRouter()
OrgId = OrgIdInPath
MAX_SEQUENCE = 2**31 - 1  # the column's range (PostgreSQL integer)
# Every recipient route: the token's org_type must be the organisation's type in the directory.
AS_REGISTERED = " A token whose `org_type` is not your organisation's type in the directory is 403."


# --- directory --------------------------------------------------------------------------------------


@router.put(
    "/v1/gemeenten/{code}",
    tags=["directory"],
    response_model=GemeenteRead,
    status_code=200,
    summary="Add or replace a gemeente and its postcode areas",
    description="Which 4-digit postcode areas lie in a gemeente. 201 when new, 200 when replaced; 409 when "
    "an area already lies in another gemeente.",
    responses={**problem_responses("validation", "conflict"), 201: {"model": GemeenteRead}},
)
async def put_gemeente(
    code: GemeenteCode, body: GemeentePut, response: Response, _: Admin, unit_of_work: UnitOfWorkDep
) -> GemeenteView:
    saved = await directory.put_gemeente(
        unit_of_work, code=code, name=body.name, ranges=[r.domain() for r in body.postcode_ranges]
    )
    response.status_code = 201 if saved.created else 200
    return saved.view


@router.get(
    "/v1/gemeenten",
    tags=["directory"],
    response_model=GemeenteList,
    summary="List the gemeenten",
    description="Every gemeente in the directory with its postcode areas; merged-away ones carry `ended_at`.",
    responses=problem_responses(),
)
async def list_gemeenten(_: Admin, unit_of_work: UnitOfWorkDep) -> Items[GemeenteView]:
    return await directory.list_gemeenten(unit_of_work)


@router.get(
    "/v1/gemeenten/{code}",
    tags=["directory"],
    response_model=GemeenteRead,
    summary="Read a gemeente",
    description="A gemeente and its postcode areas.",
    responses=problem_responses("not-found", "validation"),
)
async def get_gemeente(code: GemeenteCode, _: Admin, unit_of_work: UnitOfWorkDep) -> GemeenteView:
    return await directory.get_gemeente(unit_of_work, code)


@router.put(
    "/v1/gemeenten/{code}/route-map",
    tags=["directory"],
    response_model=RouteMapRead,
    status_code=200,
    summary="Add a version of a gemeente's route map (routekaart)",
    description="The local coalition's agreement: which recipient type receives which risk domains, whether "
    "the note goes along, and the contact deadlines. Versions are kept: a later `effective_from` schedules a "
    "change (it does not apply before its day), the same `effective_from` replaces that version. 201 for the "
    "gemeente's first version, 200 after. A recipient type absent from `recipients` receives nothing here.",
    responses={**problem_responses("validation", "not-found"), 201: {"model": RouteMapRead}},
)
async def put_route_map(
    code: GemeenteCode, body: RouteMapPut, response: Response, _: Admin, unit_of_work: UnitOfWorkDep
) -> RouteMapView:
    saved = await directory.put_route_map(unit_of_work, code, body.domain())
    response.status_code = 201 if saved.created else 200
    return saved.view


@router.get(
    "/v1/gemeenten/{code}/route-map",
    tags=["directory"],
    response_model=RouteMapVersions,
    summary="Read a gemeente's route map",
    description="The version in force today (`current`; null: the default — every type receives every "
    "domain and the note, deadlines P14D / P2D) and every version, oldest first.",
    responses=problem_responses("not-found", "validation"),
)
async def get_route_map(code: GemeenteCode, _: Admin, unit_of_work: UnitOfWorkDep) -> RouteMapVersionsView:
    return await directory.get_route_map(unit_of_work, code)


@router.put(
    "/v1/organisations/{org_id}",
    tags=["directory"],
    response_model=OrganisationRead,
    status_code=200,
    summary="Add or replace a recipient organisation",
    description="A JGZ organisation or wijkteam, the gemeenten and/or 4-digit postcode ranges it serves. "
    "201 when new, 200 when replaced. Two active organisations of one type may not serve the same gemeente "
    "or overlapping ranges (409). Its queue `kansrijk.deliveries.<org_id>` is declared at once. "
    "`delivery_mode` `thin`: its queue carries no personal data, only ids and an `href` to fetch the delivery "
    "with its token; a change applies to what is routed afterwards.",
    responses={**problem_responses("validation", "conflict"), 201: {"model": OrganisationRead}},
)
async def put_organisation(
    org_id: OrgId, body: OrganisationPut, response: Response, _: Admin, unit_of_work: UnitOfWorkDep, broker: BrokerDep
) -> OrganisationView:
    saved = await directory.put_organisation(
        unit_of_work,
        org_id=org_id,
        name=body.name,
        org_type=body.type,
        gemeente_codes=list(body.gemeenten),
        ranges=[r.domain() for r in body.postcode_ranges],
        active=body.active,
        delivery_mode=body.delivery_mode,
    )
    await declare_organisation_queue(broker, org_id)
    response.status_code = 201 if saved.created else 200
    return saved.view


@router.get(
    "/v1/organisations",
    tags=["directory"],
    response_model=OrganisationList,
    summary="List organisations",
    description="Every recipient organisation, active or not.",
    responses=problem_responses(),
)
async def list_organisations(_: Admin, unit_of_work: UnitOfWorkDep) -> Items[OrganisationView]:
    return await directory.list_organisations(unit_of_work)


@router.get(
    "/v1/organisations/{org_id}",
    tags=["directory"],
    response_model=OrganisationRead,
    summary="Read an organisation",
    description="One recipient organisation and what it serves.",
    responses=problem_responses("not-found", "validation"),
)
async def get_organisation(org_id: OrgId, _: Admin, unit_of_work: UnitOfWorkDep) -> OrganisationView:
    return await directory.get_organisation(unit_of_work, org_id)


@router.delete(
    "/v1/organisations/{org_id}",
    tags=["directory"],
    response_model=OrganisationRead,
    summary="Deactivate an organisation",
    description="It receives nothing more; its history and deliveries stay.",
    responses=problem_responses("not-found", "validation"),
)
async def delete_organisation(org_id: OrgId, _: Admin, unit_of_work: UnitOfWorkDep) -> OrganisationView:
    return await directory.deactivate_organisation(unit_of_work, org_id)


@router.get(
    "/v1/route",
    tags=["directory"],
    response_model=RoutePreview,
    summary="Where would a melding go?",
    description="For a postcode: its gemeente and, per recipient type, the organisation a melding would go "
    "to now (a postcode range beats a whole gemeente) and, by the gemeente's route map in force today, the "
    "share of `risk_domains` (comma-separated) it would receive, whether the note goes along and its contact "
    "deadlines — or `skipped: route-map`.",
    responses=problem_responses("validation"),
)
async def route_preview(
    _: Admin,
    unit_of_work: UnitOfWorkDep,
    postcode: Annotated[Postcode, Query(examples=["1011AB"])],
    risk_domains: Annotated[
        str | None,
        Query(min_length=1, max_length=400, pattern=r"^[a-z-]+(,[a-z-]+)*$", examples=["verslaving,huisvesting"]),
    ] = None,
) -> RoutePreviewView:
    return await directory.preview_route(unit_of_work, postcode, risk_domains_in(risk_domains))


# --- unroutable and dead letters ----------------------------------------------------------------


@router.get(
    "/v1/unroutable",
    tags=["operations"],
    response_model=UnroutableList,
    summary="Meldingen waiting for a recipient",
    description="Meldingen with a requested recipient type no organisation serves yet, with their gemeente's "
    "name. They are routed again automatically within 10 seconds of a directory change. A melding a "
    "recipient sent back (`returned`) says by whom (`org_id`, `org_name`), why and when (`returned_at`), and "
    "waits for an operator.",
    responses=problem_responses(),
)
async def list_unroutable(_: Admin, unit_of_work: UnitOfWorkDep) -> Items[UnroutableView]:
    return Items(await operations.list_unroutable(unit_of_work))


@router.post(
    "/v1/unroutable/{melding_id}/reroute",
    tags=["operations"],
    response_model=RerouteResult,
    summary="Route a waiting melding again now",
    description="Consent is checked again first. A melding a recipient returned goes, with `org_id`, to that "
    "active organisation of the returned type, or without it by the directory — never automatically to an "
    "organisation that returned it as the wrong recipient. Still `waiting`: `reason` says why, per type — no "
    "active organisation of that type serves the address, or every one that does returned it as the wrong "
    "recipient.",
    responses=problem_responses("not-found", "unavailable", "validation", "conflict"),
)
async def reroute(
    melding_id: IdInPath,
    principal: Admin,
    unit_of_work: UnitOfWorkDep,
    client: ConsentClientDep,
    request_id: RequestId,
    body: Reroute | None = None,
) -> RerouteResult:
    routed = await commands.reroute(
        unit_of_work,
        client,
        melding_id,
        request_id=request_id,
        org_id=body.org_id if body is not None else None,
        by_operator=True,
        principal=principal,
    )
    waiting = [StillWaiting(recipient_type=w.recipient_type, reason=w.reason.value) for w in routed.waiting]
    if routed.reason is None:  # not waiting (any more)
        waiting = []
    return RerouteResult(melding_id=melding_id, status=routed.status, reason=routed.reason, waiting=waiting)


@router.get(
    "/v1/overdue",
    tags=["operations"],
    response_model=OverdueList,
    summary="Deliveries past their contact deadline",
    description="Deliveries still without contact (`queued` or `received`) after their `contact_due_at` (the "
    "route map's deadline for the melding's urgency): their recipient got a `melding.reminder`, the sender "
    "sees `overdue`. Oldest deadline first, with the recipient's and the gemeente's names. "
    "`kansrijk_overdue_deliveries` on /metrics counts them.",
    responses=problem_responses(),
)
async def list_overdue(_: Admin, unit_of_work: UnitOfWorkDep) -> Items[OverdueView]:
    return Items(await operations.list_overdue(unit_of_work))


@router.get(
    "/v1/dead-letters",
    tags=["operations"],
    response_model=DeadLetterList,
    summary="Messages that failed processing",
    description="Messages dead-lettered after the delivery limit (or rejected as unreadable), newest first.",
    responses=problem_responses("validation"),
)
async def list_dead_letters(
    principal: Admin,
    unit_of_work: UnitOfWorkDep,
    request_id: RequestId,
    include_replayed: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Items[DeadLetter]:
    return Items(
        await queries.list_dead_letters(
            unit_of_work, principal=principal, include_replayed=include_replayed, limit=limit, request_id=request_id
        )
    )


@router.post(
    "/v1/dead-letters/{dead_letter_id}/replay",
    tags=["operations"],
    response_model=DeadLetterRead,
    summary="Put a dead letter back on its queue",
    description="Republished with its own message id to the queue it died in; replaying twice does nothing. "
    "A message that was unreadable (not UTF-8 JSON) cannot be replayed (409).",
    responses=problem_responses("not-found", "conflict"),
)
async def replay_dead_letter(
    dead_letter_id: IdInPath, principal: Admin, unit_of_work: UnitOfWorkDep, request_id: RequestId
) -> DeadLetter:
    return await commands.replay_dead_letter(
        unit_of_work, dead_letter_id=dead_letter_id, request_id=request_id, principal=principal
    )


# --- recipients -----------------------------------------------------------------------------------


@router.get(
    "/v1/deliveries",
    tags=["deliveries"],
    response_model=None,
    summary="Your organisation's deliveries",
    description="Newest first, each as its queue message (`melding.delivered`, or the retraction) with "
    "`status`. Pass `next_cursor` back as `cursor`." + AS_REGISTERED,
    responses={**problem_responses("validation"), 200: {"model": DeliveryPage}},
)
async def list_deliveries(
    principal: DeliveryReader,
    unit_of_work: UnitOfWorkDep,
    request_id: RequestId,
    status_filter: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorQuery = None,
) -> Page[dict[str, Any]]:
    # No response_model: each item is the stored queue message itself, not re-validated (DeliveryDocument).
    return await queries.list_deliveries(
        unit_of_work, principal=principal, status=status_filter, cursor=cursor, limit=limit, request_id=request_id
    )


@router.get(
    "/v1/deliveries/queue",
    tags=["deliveries"],
    response_model=RecipientQueueRead,
    summary="Your organisation's queue",
    description="The queue your deliveries wait on (`kansrijk.deliveries.<org_id>`, a quorum queue bound to "
    "the direct exchange `kansrijk.deliveries` with your `org_id`), the broker it is on (`broker`: protocol, "
    "host, port and virtual host to connect to, as GET /asyncapi.json's server; your user and password come "
    "from the coalition's operators), and your organisation as the directory knows it. 404 while the "
    "directory does not know your organisation: a consumer should not start then." + AS_REGISTERED,
    responses=problem_responses("not-found"),
)
async def recipient_queue(
    principal: DeliveryReader, unit_of_work: UnitOfWorkDep, broker: PublicBrokerDep, request_id: RequestId
) -> RecipientQueueView:
    return await queries.recipient_queue(unit_of_work, principal=principal, broker=broker, request_id=request_id)


@router.get(
    "/v1/deliveries/messages",
    tags=["deliveries"],
    response_model=RecipientMessagesPage,
    summary="Messages on your queue after a sequence number, again",
    description="Every message on your queue carries `sequence`, 1, 2, 3, … without gaps. Seeing a gap (or "
    "starting afresh), fetch what followed the last number you hold. Reading is audited like a delivery's."
    + AS_REGISTERED,
    responses=problem_responses("validation"),
)
@expensive
async def recipient_messages(
    principal: DeliveryReader,
    unit_of_work: UnitOfWorkDep,
    request_id: RequestId,
    after_sequence: Annotated[int, Query(ge=0, le=MAX_SEQUENCE, description="the last sequence you hold")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RecipientMessagesView:
    return await queries.recipient_messages(
        unit_of_work, principal=principal, after_sequence=after_sequence, limit=limit, request_id=request_id
    )


@router.get(
    "/v1/deliveries/{delivery_id}",
    tags=["deliveries"],
    response_model=None,
    summary="Fetch a delivery again",
    description="The same body as the queue message: a recipient that lost a message fetches it here." + AS_REGISTERED,
    responses={**problem_responses("not-found"), 200: {"model": DeliveryDocument}},
)
async def get_delivery(
    delivery_id: IdInPath, principal: DeliveryReader, unit_of_work: UnitOfWorkDep, request_id: RequestId
) -> dict[str, Any]:
    return await queries.get_delivery(unit_of_work, principal=principal, delivery_id=delivery_id, request_id=request_id)


@router.post(
    "/v1/deliveries/{delivery_id}/status",
    tags=["deliveries"],
    response_model=None,
    status_code=status.HTTP_200_OK,
    summary="Report back on a delivery",
    description="`received` → `contact_made` (with `contact_at`, default today) → `closed` (with an `outcome`), "
    "forward only; or `returned` with a `reason` before `contact_made` — it then waits for an operator. "
    "Closing with `phb-done` or `support-started` needs the day of contact: an earlier `contact_made`, or "
    "`contact_at` on the `closed` report (which records the contact; 422 without either); other outcomes may "
    "close straight from `received`. The same report again is 200 and changes nothing; the same status "
    "saying something else (another outcome, contact day, reason or note) is 409, as is going back or any "
    "change to a retracted or returned delivery: nothing is accepted and then dropped. The sender sees it "
    "within seconds." + AS_REGISTERED,
    responses={**problem_responses("not-found", "conflict", "validation"), 200: {"model": DeliveryDocument}},
)
async def report_status(
    delivery_id: IdInPath,
    body: StatusReport,
    principal: DeliveryWriter,
    unit_of_work: UnitOfWorkDep,
    request_id: RequestId,
) -> dict[str, Any]:
    return await commands.report_status(
        unit_of_work,
        principal=principal,
        delivery_id=delivery_id,
        status=DeliveryStatus(body.status),
        note=body.note,
        contact_at=body.contact_at,
        outcome=body.outcome,
        returned_reason=body.reason,
        request_id=request_id,
    )
