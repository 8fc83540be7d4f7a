"""The directory: gemeenten with their postcode areas, recipient organisations and what they serve."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from services.routing.domain.model import (
    GemeenteRecord,
    Organisation,
    Pc4Range,
    SkipReason,
    StraddlingArea,
    check_organisation_id,
    choose,
    merge_ranges,
)
from services.routing.domain.route_map import DEFAULT_DEADLINES, RecipientRule, RouteMap, in_force
from services.routing.service_layer.ports import DirectoryRegister, FullTransactionFactory
from services.routing.service_layer.views import (
    GemeenteName,
    GemeenteView,
    Items,
    OrganisationView,
    PreviewRecipient,
    RecipientRuleView,
    RouteMapVersionsView,
    RouteMapView,
    RoutePreviewView,
    Saved,
    ranges_read,
)
from shared.clock import now, today_nl
from shared.contracts.vocabulary import DeliveryMode
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.identifiers import postcode_area, validate_gemeente_code, validate_pc4
from shared.messaging.topology import organisation_queue


def _gemeente_view(row: GemeenteRecord, ranges: list[Pc4Range]) -> GemeenteView:
    return GemeenteView(
        code=row.code, name=row.name, postcode_ranges=ranges_read(ranges), source=row.source, ended_at=row.ended_at
    )


async def gemeente_view(repository: DirectoryRegister, code: str) -> GemeenteView:
    row = await repository.gemeente(code)
    if row is None:
        raise NotFound("no gemeente with this code")
    return _gemeente_view(row, (await repository.ranges_of_gemeenten([code])).get(code, []))


async def put_gemeente(
    unit_of_work: FullTransactionFactory, *, code: str, name: str, ranges: list[Pc4Range]
) -> Saved[GemeenteView]:
    async with unit_of_work() as uow:
        repository = uow.directory
        taken = await repository.gemeente_ranges_overlapping(ranges, except_code=code)
        if taken:
            raise Conflict(f"these postcode areas already lie in gemeente {', '.join(taken)}")
        created = await repository.save_gemeente(code=code, name=name, ranges=ranges, source="manual", at=now())
        view = await gemeente_view(repository, code)
        await uow.commit()
        return Saved(view, created)


async def get_gemeente(unit_of_work: FullTransactionFactory, code: str) -> GemeenteView:
    async with unit_of_work() as uow:
        return await gemeente_view(uow.directory, code)


async def list_gemeenten(unit_of_work: FullTransactionFactory) -> Items[GemeenteView]:
    async with unit_of_work() as uow:
        repository = uow.directory
        ranges = await repository.ranges_of_gemeenten()
        return Items([_gemeente_view(g, ranges.get(g.code, [])) for g in await repository.all_gemeenten()])


async def organisation_views(
    repository: DirectoryRegister, organisations: list[Organisation]
) -> list[OrganisationView]:
    coverage = await repository.coverage([o.org_id for o in organisations])
    return [
        OrganisationView(
            org_id=r.org_id,
            name=r.name,
            type=r.type,
            active=r.active,
            delivery_mode=r.delivery_mode,
            gemeenten=coverage[r.org_id][0],
            postcode_ranges=ranges_read(coverage[r.org_id][1]),
            queue=organisation_queue(r.org_id),
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in organisations
    ]


async def _organisation_view(repository: DirectoryRegister, org_id: str) -> OrganisationView:
    organisation = await repository.organisation(org_id)
    if organisation is None:
        raise NotFound("no organisation with this id")
    [view] = await organisation_views(repository, [organisation])
    return view


async def put_organisation(
    unit_of_work: FullTransactionFactory,
    *,
    org_id: str,
    name: str,
    org_type: str,
    gemeente_codes: list[str],
    ranges: list[Pc4Range],
    active: bool,
    delivery_mode: DeliveryMode = "full",
) -> Saved[OrganisationView]:
    """Register or change an organisation. Its `delivery_mode` applies to what is routed from now on."""
    check_organisation_id(org_id, org_type)
    async with unit_of_work() as uow:
        repository = uow.directory
        for index, code in enumerate(gemeente_codes):
            if await repository.gemeente(code) is None:
                raise ValidationFailed(f"gemeenten.{index}", "unknown gemeente: load or PUT it first")
        if active:
            conflicts = await repository.conflicting_organisations(
                org_id=org_id, org_type=org_type, gemeente_codes=gemeente_codes, ranges=ranges
            )
            if conflicts:
                raise Conflict(
                    f"active {org_type} organisation(s) {', '.join(conflicts)} already serve part of "
                    "this area; one organisation per type may serve an address"
                )
        created = await repository.save_organisation(
            org_id=org_id,
            name=name,
            org_type=org_type,
            active=active,
            gemeente_codes=gemeente_codes,
            ranges=ranges,
            at=now(),
            delivery_mode=delivery_mode,
        )
        view = await _organisation_view(repository, org_id)
        await uow.commit()
        return Saved(view, created)


async def get_organisation(unit_of_work: FullTransactionFactory, org_id: str) -> OrganisationView:
    async with unit_of_work() as uow:
        return await _organisation_view(uow.directory, org_id)


async def list_organisations(unit_of_work: FullTransactionFactory) -> Items[OrganisationView]:
    async with unit_of_work() as uow:
        repository = uow.directory
        return Items(await organisation_views(repository, await repository.all_organisations()))


async def deactivate_organisation(unit_of_work: FullTransactionFactory, org_id: str) -> OrganisationView:
    async with unit_of_work() as uow:
        repository = uow.directory
        if await repository.organisation(org_id) is None:
            raise NotFound("no organisation with this id")
        await repository.deactivate(org_id, now())
        view = await _organisation_view(repository, org_id)
        await uow.commit()
        return view


async def preview_route(
    unit_of_work: FullTransactionFactory, postcode: str, risk_domains: list[str] | None = None
) -> RoutePreviewView:
    """Where a melding from this address would go now, and (by the route map in force) what each recipient
    type would receive of `risk_domains` (absent: what its rule admits), or that it is skipped."""
    pc4 = postcode_area(postcode)
    today = today_nl()
    async with unit_of_work() as uow:
        repository = uow.directory
        gemeente = await repository.gemeente_for_pc4(pc4)
        route_map = in_force(await repository.route_maps_in_force(gemeente.code, today) if gemeente else [], today)
        recipients: dict[str, PreviewRecipient | None] = {}
        for recipient_type in ("jgz", "wijkteam"):
            rule = route_map.rule_for(recipient_type)
            admitted = rule.admitted(risk_domains) if rule is not None and risk_domains is not None else None
            if rule is None or admitted == ():
                recipients[recipient_type] = PreviewRecipient(skipped=SkipReason.route_map.value)
                continue
            chosen = choose(
                await repository.candidates(
                    org_type=recipient_type, pc4=pc4, gemeente_code=gemeente.code if gemeente else None
                )
            )
            recipients[recipient_type] = (
                PreviewRecipient(
                    org_id=chosen.org_id,
                    name=chosen.name,
                    risk_domains=list(admitted) if admitted is not None else _rule_domains(rule),
                    note=rule.note,
                    contact_deadline=_deadlines(route_map),
                )
                if chosen
                else None
            )
        straddling = await repository.straddling(pc4)
    return RoutePreviewView(
        postcode=postcode,
        gemeente=GemeenteName(gemeente.code, gemeente.name) if gemeente else None,
        route_map_effective_from=route_map.effective_from,
        recipients=recipients,
        note=(
            f"postcode area {pc4} straddles a gemeente border: routed to the gemeente with the "
            f"largest share of its addresses ({straddling[0].share:.2%}); for the other addresses "
            "this may be wrong"
        )
        if len(straddling) > 1
        else None,
    )


# --- route maps -------------------------------------------------------------------------------------


def _rule_domains(rule: RecipientRule) -> str | list[str]:
    return "all" if rule.risk_domains is None else sorted(rule.risk_domains)


def _deadlines(route_map: RouteMap) -> dict[str, timedelta]:
    return {urgency: route_map.deadline_for(urgency) for urgency in DEFAULT_DEADLINES}


def route_map_view(route_map: RouteMap) -> RouteMapView:
    return RouteMapView(
        effective_from=route_map.effective_from,
        recipients={
            recipient_type: RecipientRuleView(risk_domains=_rule_domains(rule), note=rule.note)
            for recipient_type, rule in sorted(route_map.recipients.items())
        },
        contact_deadline=_deadlines(route_map),
    )


async def put_route_map(unit_of_work: FullTransactionFactory, code: str, route_map: RouteMap) -> Saved[RouteMapView]:
    """Add a version of a gemeente's route map (or replace the one with the same `effective_from`)."""
    async with unit_of_work() as uow:
        if await uow.directory.gemeente(code) is None:
            raise NotFound("no gemeente with this code: PUT it (or load the CBS files) first")
        first = await uow.directory.save_route_map(code, route_map, now())
        await uow.commit()
    return Saved(route_map_view(route_map), first)


async def get_route_map(unit_of_work: FullTransactionFactory, code: str) -> RouteMapVersionsView:
    """The version in force today (None: the default applies) and every version, oldest first."""
    async with unit_of_work() as uow:
        if await uow.directory.gemeente(code) is None:
            raise NotFound("no gemeente with this code")
        versions = await uow.directory.route_maps(code)
    current = in_force(versions, today_nl())
    return RouteMapVersionsView(
        current=None if current.is_default else route_map_view(current),
        versions=[route_map_view(v) for v in versions],
    )


async def load_route_maps(unit_of_work: FullTransactionFactory, maps: dict[str, list[RouteMap]]) -> int:
    """Many gemeenten's route maps in one transaction (`kansrijk directory route-maps`): all or nothing.
    Returns how many versions were saved."""
    at, saved = now(), 0
    async with unit_of_work() as uow:
        unknown = [code for code in maps if await uow.directory.gemeente(code) is None]
        if unknown:
            raise ValidationFailed(
                "gemeente", f"unknown gemeente(n): {', '.join(sorted(unknown))}; load the CBS files first"
            )
        for code, versions in maps.items():
            for version in versions:
                await uow.directory.save_route_map(code, version, at)
                saved += 1
        await uow.commit()
    return saved


# --- CBS reference data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadReport:
    gemeenten: int
    postcode_areas: int
    straddling: int
    ended: int


# The CBS edition the routing service ships (services/routing/reference_data/SOURCES.md names it).
REFERENCE_DATA = Path(__file__).resolve().parents[1] / "reference_data"
SHIPPED_GEMEENTEN = REFERENCE_DATA / "gemeenten.csv"
SHIPPED_POSTCODES = REFERENCE_DATA / "pc4_gemeente.csv"


def read_cbs_files(gemeenten_file: Path, postcodes_file: Path) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The two CBS files (the format of the shipped reference_data/gemeenten.csv and pc4_gemeente.csv), checked."""
    names: dict[str, str] = {}
    with gemeenten_file.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                names[validate_gemeente_code(row["code"])] = row["name"].strip()
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{gemeenten_file.name} line {line}: not a gemeente row ({exc})") from None
    areas = []
    with postcodes_file.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                areas.append(
                    {
                        "pc4": validate_pc4(row["pc4"]),
                        "gemeente_code": validate_gemeente_code(row["gemeente_code"]),
                        "share": float(row["share"]),
                    }
                )
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{postcodes_file.name} line {line}: not a postcode row ({exc})") from None
            if areas[-1]["gemeente_code"] not in names:
                raise ValueError(f"{postcodes_file.name} line {line}: gemeente not in {gemeenten_file.name}")
    return names, areas


def cbs_edition(gemeenten_file: Path) -> str | None:
    """The CBS edition a gemeenten file is from: a year in its name (`gemeenten_2025.csv`), else the edition
    its SOURCES.md names ("Wijk- en Buurtkaart 2025"); None when neither says (the caller must ask).
    The file's date says when it was copied, not which edition it is."""
    if match := re.search(r"(?<![0-9])(20[0-9]{2})(?![0-9])", gemeenten_file.stem):
        return match.group(1)
    sources = gemeenten_file.with_name("SOURCES.md")
    if sources.is_file():
        found = re.search(r"Wijk- en Buurtkaart (20[0-9]{2})", sources.read_text(encoding="utf-8"))
        if found:
            return f"Wijk- en Buurtkaart {found.group(1)}"
    return None


async def load_cbs(
    unit_of_work: FullTransactionFactory, *, gemeenten_file: Path, postcodes_file: Path, edition: str
) -> LoadReport:
    """Load an edition of the CBS files over the directory: gemeenten that merged away end (history stays)."""
    names, areas = read_cbs_files(gemeenten_file, postcodes_file)
    by_pc4: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for area in areas:
        by_pc4[area["pc4"]].append(area)
    # A postcode area on a border goes to the gemeente holding most of its addresses.
    owner = {pc4: max(rows, key=lambda r: r["share"])["gemeente_code"] for pc4, rows in by_pc4.items()}
    pc4s_of: dict[str, list[str]] = defaultdict(list)
    for pc4, code in owner.items():
        pc4s_of[code].append(pc4)
    straddling = [
        StraddlingArea(r["pc4"], r["gemeente_code"], r["share"])
        for rows in by_pc4.values()
        if len(rows) > 1
        for r in rows
    ]
    at = now()
    async with unit_of_work() as uow:
        repository = uow.directory
        ended = await repository.end_gemeenten_except(set(names), at)
        for code, name in names.items():
            # Replace every range first: an area moving between gemeenten must not collide with itself.
            await repository.save_gemeente(code=code, name=name, ranges=[], source=f"CBS {edition}", at=at)
        for code, name in names.items():
            await repository.save_gemeente(
                code=code, name=name, ranges=merge_ranges(pc4s_of.get(code, [])), source=f"CBS {edition}", at=at
            )
        await repository.replace_straddling(straddling)
        await repository.record_load(edition=edition, gemeenten_count=len(names), areas=len(owner), ended=ended, at=at)
        await uow.commit()
    return LoadReport(
        gemeenten=len(names),
        postcode_areas=len(owner),
        straddling=sum(1 for rows in by_pc4.values() if len(rows) > 1),
        ended=ended,
    )
