"""Programme figures for gemeenten and coalities (contract v1.1, "Programme figures"): one use case, for
`GET /v1/figures` and `kansrijk report` alike. The counting and suppression are the domain's
(`domain/figures.py`); this loads the skeletons of the whole periods asked for and records who asked."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.melding.domain.figures import SUPPRESSION_THRESHOLD, Interval, checked_range, figures, shows_nothing
from services.melding.service_layer.ports import FullTransactionFactory
from shared.auth import Principal
from shared.clock import start_of_nl_day, today_nl

__all__ = ["Interval", "programme_figures", "shows_nothing"]  # what its callers (`kansrijk report`) need


async def programme_figures(
    unit_of_work: FullTransactionFactory,
    *,
    principal: Principal,
    gemeente_code: str | None,
    first: date,
    last: date,
    interval: Interval,
    request_id: str | None,
) -> dict[str, Any]:
    """The figures of one gemeente (or, with None, the country) for the whole periods that hold
    `first`..`last`; the request is recorded in the audit log (who looked at which gemeente's figures)."""
    start, end = checked_range(first, last, interval)
    national = gemeente_code is None
    async with unit_of_work() as uow:
        # Every gemeente's meldingen of the whole years: each year is protected as one table, the same for
        # every question about it, and the country's margins tie the gemeenten together.
        facts = await uow.meldingen.figure_facts(
            start_of_nl_day(date(start.year, 1, 1)), start_of_nl_day(date(end.year + 1, 1, 1)), None
        )
        periods = figures(facts, start, end, interval, today_nl(), gemeente=gemeente_code)
        listed = sorted(periods[0]["by_gemeente"]) if national else [gemeente_code]
        names = await uow.meldingen.gemeente_names(listed)
        uow.audit.record(principal, "read", "figures", gemeente_code or "NL", patient_bsn=None, request_id=request_id)
        await uow.commit()
    return {
        "gemeente": None if gemeente_code is None else {"code": gemeente_code, "name": names.get(gemeente_code)},
        "from": start,
        "to": end,
        "interval": interval.value,
        "suppression_threshold": SUPPRESSION_THRESHOLD,
        "gemeente_names": names if national else None,
        "periods": periods,
    }
