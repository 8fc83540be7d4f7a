"""Programme figures for gemeenten and coalities (contract v1.1, "Programme figures"): one use case, for
`GET /v1/figures` and `kansrijk report` alike. The counting and suppression are the domain's
(`domain/figures.py`); this loads the skeletons of the whole periods asked for and records who asked."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.melding.adapters.regions import shipped_regions
from services.melding.domain.figures import (
    SUPPRESSION_THRESHOLD,
    Interval,
    YearTables,
    checked_range,
    figures,
    shows_nothing,
)
from services.melding.domain.regions import Regions
from services.melding.service_layer.ports import FullTransactionFactory
from shared.auth import Principal
from shared.clock import start_of_nl_day, today_nl
from shared.errors import ValidationFailed

__all__ = ["Interval", "ggd_regions", "programme_figures", "shows_nothing"]  # what its callers (`kansrijk report`) need


# This process's protected years: the charts, the CSV and the page of one question protect its years once.
_YEAR_TABLES = YearTables()


def ggd_regions() -> Regions:
    """The GGD regions the figures know (the shipped CBS edition)."""
    return shipped_regions()


async def programme_figures(
    unit_of_work: FullTransactionFactory,
    *,
    principal: Principal,
    gemeente_code: str | None,
    first: date,
    last: date,
    interval: Interval,
    request_id: str | None,
    region_code: str | None = None,
    regions: Regions | None = None,
) -> dict[str, Any]:
    """The figures of one gemeente, one GGD region or (with neither) the country for the whole periods that
    hold `first`..`last`; the request is recorded in the audit log (who looked at which area's figures).
    ValidationFailed when both a gemeente and a region are asked for, or a region `regions` does not know."""
    regions = regions or ggd_regions()
    if gemeente_code is not None and region_code is not None:
        raise ValidationFailed("region", "ask for a gemeente or a region, not both")
    if region_code is not None and region_code not in regions.by_code:
        raise ValidationFailed("region", f"{region_code} is not a GGD region: see GET /v1/figures/regions")
    start, end = checked_range(first, last, interval)
    region = regions.by_code[region_code] if region_code is not None else None
    async with unit_of_work() as uow:
        # Every gemeente's meldingen of the whole years: each year is protected as one table, the same for
        # every question about it, and the regions' and the country's margins tie the gemeenten together.
        facts = await uow.meldingen.figure_facts(
            start_of_nl_day(date(start.year, 1, 1)), start_of_nl_day(date(end.year + 1, 1, 1)), None
        )
        periods = figures(
            facts,
            start,
            end,
            interval,
            today_nl(),
            gemeente=gemeente_code,
            region=region_code,
            regions=regions,
            tables=_YEAR_TABLES,
        )
        listed = [gemeente_code] if gemeente_code is not None else sorted(periods[0]["by_gemeente"])
        # The names routing reported with the meldingen; the reference data's (CBS) for a gemeente without one.
        names = {code: regions.gemeente_names[code] for code in listed if code in regions.gemeente_names}
        names |= await uow.meldingen.gemeente_names(listed)
        uow.audit.record(
            principal, "read", "figures", gemeente_code or region_code or "NL", patient_bsn=None, request_id=request_id
        )
        await uow.commit()
    return {
        "gemeente": None if gemeente_code is None else {"code": gemeente_code, "name": names.get(gemeente_code)},
        "region": None if region is None else {"code": region.code, "name": region.name},
        "from": start,
        "to": end,
        "interval": interval.value,
        "suppression_threshold": SUPPRESSION_THRESHOLD,
        "gemeente_names": None
        if gemeente_code is not None
        else {code: names[code] for code in listed if code in names},
        "periods": periods,
    }
