"""`GET /v1/figures`: the programme's figures for a gemeente, a GGD region or the country (contract v1.1), and
`GET /v1/figures/regions`, the regions it knows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from services.melding.api.deps import UnitOfWorkDep
from services.melding.api.schemas import FIGURES_EXAMPLE, REGIONS_EXAMPLE, FiguresRead, RegionRead
from services.melding.domain.figures import SUPPRESSION_THRESHOLD, Interval
from services.melding.service_layer.figures import ggd_regions, programme_figures
from services.melding.service_layer.report import charts_svg, render_report
from shared.api import RequestId
from shared.auth import Principal, require_scope
from shared.clock import IsoDate, now, today_nl
from shared.edge import expensive
from shared.identifiers import GemeenteCode, GgdRegionCode
from shared.problems import problem_responses

router = APIRouter(prefix="/v1/figures", tags=["figures"])
FiguresReader = Annotated[Principal, Depends(require_scope("figures:read"))]


@dataclass(frozen=True)
class FiguresAsked:
    """The query the figures, their report page and their charts take: which gemeente or GGD region (or the
    country), which days, per which period."""

    first: Annotated[IsoDate, Query(alias="from", description="first day (YYYY-MM-DD), widened to its period")]
    last: Annotated[IsoDate, Query(alias="to", description="last day (YYYY-MM-DD), widened to its period")]
    gemeente: Annotated[
        GemeenteCode | None, Query(description="CBS gemeente code; omit (and `region`) for the country")
    ] = None
    region: Annotated[
        GgdRegionCode | None,
        Query(
            description="CBS GGD region code (`GET /v1/figures/regions` lists them), not with `gemeente`; omit "
            "(and `gemeente`) for the country"
        ),
    ] = None
    interval: Annotated[Interval, Query()] = Interval.month

    def arguments(self) -> dict[str, Any]:
        return {
            "gemeente_code": self.gemeente,
            "region_code": self.region,
            "first": self.first,
            "last": self.last,
            "interval": self.interval,
        }


@router.get(
    "",
    response_model=FiguresRead,
    response_model_by_alias=True,
    summary="Programme figures for a gemeente, a GGD region or the country",
    description="Per month, quarter or year: how many meldingen, from which sender types, for which risk "
    "domains and recipient types, where they stand, how many were returned, the share with contact within the "
    "contact deadline, the days to contact and the outcomes. Counted from the anonymous skeleton of every "
    "melding (also after its personal data is removed). `from` and `to` widen to whole periods (the answer "
    f"says which). Every count below {SUPPRESSION_THRESHOLD}, and every figure derived from fewer meldingen, "
    "is `null`; a true 0 is 0 unless it would give a hidden count away. Each year is protected as one table "
    "(every gemeente, every GGD region and the country, per month, quarter and year, every breakdown), so "
    "that no combination of answers works a hidden count out or narrows it down; every answer is a slice of it. "
    "With `region` (a CBS GGD region code, not together with `gemeente`: 422): the region's figures, with "
    "`by_gemeente` over every gemeente it holds and `region` naming it; an unknown region is a 422 too. The "
    "regions are a level of the same protected table, between the gemeenten and the country, so a region's "
    "figures cannot be differenced against its gemeenten's or the country's. Without `gemeente` and `region`: "
    "the whole country, with `by_gemeente`. Every request is recorded in the audit log.",
    responses={**problem_responses("validation"), 200: {"content": {"application/json": {"example": FIGURES_EXAMPLE}}}},
)
@expensive
async def get_figures(
    principal: FiguresReader,
    unit_of_work: UnitOfWorkDep,
    request_id: RequestId,
    asked: Annotated[FiguresAsked, Depends()],
) -> dict[str, Any]:
    return await programme_figures(unit_of_work, principal=principal, request_id=request_id, **asked.arguments())


@router.get(
    "/regions",
    response_model=list[RegionRead],
    summary="The GGD regions the figures know",
    description="Every GGD region (CBS code and name) with the CBS codes of the gemeenten it holds, as "
    "`GET /v1/figures?region=` takes them: the CBS GGD regions of 2022 over the gemeenten of 2025, a gemeente "
    "split over two regions counted in the one with most of its addresses. Bron: CBS.",
    responses={**problem_responses(), 200: {"content": {"application/json": {"example": REGIONS_EXAMPLE}}}},
)
async def get_figure_regions(_principal: FiguresReader) -> list[dict[str, Any]]:
    return [
        {"code": region.code, "name": region.name, "gemeenten": list(region.gemeenten)}
        for region in ggd_regions().by_code.values()
    ]


# The report page, for the console's download (docs/console.md): HTML, so outside the OpenAPI document of JSON
# answers; its problems are the JSON ones of `GET /v1/figures`.
@router.get("/report", response_class=HTMLResponse, include_in_schema=False)
@expensive
async def get_figures_report(
    principal: FiguresReader,
    unit_of_work: UnitOfWorkDep,
    request_id: RequestId,
    asked: Annotated[FiguresAsked, Depends()],
) -> HTMLResponse:
    """The same figures as `GET /v1/figures`, as the page `kansrijk report` writes (one renderer for both):
    charts as inline SVG, suppressed figures as `x`, no script. Every request is recorded in the audit log."""
    document = await programme_figures(unit_of_work, principal=principal, request_id=request_id, **asked.arguments())
    # matplotlib's object API (no pyplot state) renders in a worker thread, off the event loop
    return HTMLResponse(await asyncio.to_thread(render_report, document, now()))


# The page's charts, each an SVG document of its own, for the console's Cijfers page (an `<img>` each: its strict
# CSP allows no inline SVG with matplotlib's style attributes). One request for all: the figures are read once.
# Outside the OpenAPI document, like the page.
@router.get("/charts", include_in_schema=False)
@expensive
async def get_figures_charts(
    principal: FiguresReader,
    unit_of_work: UnitOfWorkDep,
    request_id: RequestId,
    asked: Annotated[FiguresAsked, Depends()],
) -> dict[str, dict[str, str]]:
    """The charts of the report page over the same figures (one renderer), by name: suppressed figures as `x`,
    a true 0 as `0`. Every request is recorded in the audit log."""
    document = await programme_figures(unit_of_work, principal=principal, request_id=request_id, **asked.arguments())
    return {"charts": await asyncio.to_thread(charts_svg, document, today_nl())}
