"""The console's pages (/beheer/) for the coalition's operators and coordinators: parse, call the services on the
person's behalf, render. The rules are in services/portal/domain/console.py."""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.portal.adapters.oidc import Provider
from services.portal.adapters.platform import Platform
from services.portal.api import login
from services.portal.api.login import Audience
from services.portal.api.routes import TEMPLATES, UUID
from services.portal.api.security import csrf_token, csrf_valid
from services.portal.domain.console import (
    FormError,
    NoAccess,
    Staff,
    candidates,
    console_access,
    duration_words,
    figures_csv,
    figures_view,
    form_prefill,
    organisation_rows,
    reactivated,
    region_choices,
    route_map_from_form,
    route_map_table,
    still_waiting,
    type_name,
    waiting_list,
    waiting_types,
)
from shared.clock import today_nl
from shared.contracts.vocabulary import MEDICAL_RISK_DOMAINS, RECIPIENT_TYPES, SOCIAL_RISK_DOMAINS
from shared.errors import NotFound
from shared.figures_nl import CHARTS
from shared.identifiers import is_valid_bsn

STAFF = "staff"
RISK_DOMAINS = (*MEDICAL_RISK_DOMAINS, *SOCIAL_RISK_DOMAINS)
ORG_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
GEMEENTE_CODE = re.compile(r"^GM[0-9]{4}$")
REGION_CODE = re.compile(r"^GG[0-9]{4}$")

router = APIRouter(include_in_schema=False)


class StaffLoginRequired(Exception):
    """No session with a signed-in person of an organisation: to the console's start page."""


class NoRole(Exception):
    """Signed in, but without the role this page needs: a 403 page that says nothing of what is behind it."""


def console_page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    staff = Staff.from_session(request.session.get(STAFF))
    context.update(
        csrf=csrf_token(request.session) if staff else "",
        staff=staff,
        path=request.url.path,
    )
    response: HTMLResponse = TEMPLATES.TemplateResponse(request, f"beheer/{template}", context, status_code=status_code)
    return response


def _staff(request: Request) -> Staff:
    if request.app.state.console_provider is None:
        raise NotFound("no console here")
    staff = Staff.from_session(request.session.get(STAFF))
    if staff is None:
        raise StaffLoginRequired
    return staff


def _coordinator(staff: Annotated[Staff, Depends(_staff)]) -> Staff:
    if not staff.may("figures:read"):
        raise NoRole
    return staff


def _auditor(staff: Annotated[Staff, Depends(_staff)]) -> Staff:
    if not staff.may("audit:read"):
        raise NoRole
    return staff


def _operator(staff: Annotated[Staff, Depends(_staff)]) -> Staff:
    if not staff.may("routing:admin"):
        raise NoRole
    return staff


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _provider(request: Request) -> Provider:
    provider: Provider | None = request.app.state.console_provider
    if provider is None:
        raise NotFound("no console here")
    return provider


StaffDep = Annotated[Staff, Depends(_staff)]
Operator = Annotated[Staff, Depends(_operator)]
Coordinator = Annotated[Staff, Depends(_coordinator)]
Auditor = Annotated[Staff, Depends(_auditor)]
PlatformDep = Annotated[Platform, Depends(_platform)]


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form of a few short fields (no multipart parser needed); the first value of each."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    parsed = parse_qs((await request.body())[:8192].decode(errors="replace"))
    return {key: values[0] for key, values in parsed.items()}


async def _form_lists(request: Request) -> dict[str, list[str]]:
    """A urlencoded form with repeated fields (checkboxes)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    return parse_qs((await request.body())[:65536].decode(errors="replace"))


def _refused(request: Request) -> HTMLResponse:
    return console_page(
        request,
        "error.html",
        403,
        title="Dat ging niet goed",
        message="Uw verzoek is niet uitgevoerd. Ga terug, laad de pagina opnieuw en probeer het nog eens.",
    )


@router.get("/beheer/")
async def console_start(request: Request) -> Response:
    if request.app.state.console_provider is None:
        raise NotFound("no console here")
    staff = Staff.from_session(request.session.get(STAFF))
    if staff is None:
        return console_page(request, "start.html", title="Beheer Kansrijke Start")
    return console_page(request, "home.html", title="Beheer Kansrijke Start")


@router.get("/beheer")
async def console_slash() -> Response:
    return RedirectResponse("/beheer/", status_code=308)


def _admit(request: Request, claims: dict[str, Any]) -> dict[str, Any] | HTMLResponse:
    """A person of an organisation with a role the console knows; the session keeps who and what they may."""
    settings = request.app.state.settings
    decision = console_access(
        claims,
        roles_claim=settings.console_roles_claim,
        org_claim=settings.console_org_claim,
        role_scopes=settings.console_role_scopes,
    )
    if isinstance(decision, NoAccess):
        request.session.clear()
        return console_page(request, "forbidden.html", 403, title="Geen toegang")
    return {STAFF: decision.as_session()}


STAFF_AUDIENCE = Audience(
    prefix="/beheer",
    home="/beheer/",
    provider=_provider,
    page=console_page,
    admit=_admit,
    id_token_key="console_id_token",
    logged_out="/beheer/",
    end_provider_session=False,
)


router.include_router(login.routes(STAFF_AUDIENCE))


# --- wachtende meldingen ------------------------------------------------------------------------------------------


@router.get("/beheer/wachtend")
async def waiting(request: Request, staff: Operator, platform: PlatformDep) -> Response:
    _, unroutable = await platform.as_staff(staff, "routing", "GET", "/v1/unroutable")
    _, overdue = await platform.as_staff(staff, "routing", "GET", "/v1/overdue")
    _, dead = await platform.as_staff(staff, "routing", "GET", "/v1/dead-letters")
    rows = waiting_list(unroutable["items"], overdue["items"], datetime.now(UTC))
    return console_page(
        request,
        "waiting.html",
        title="Wachtende meldingen",
        rows=rows,
        dead_letters=dead["items"],
        type_name=type_name,
    )


async def _waiting_item(platform: Platform, staff: Staff, melding_id: str, recipient_type: str) -> dict[str, Any]:
    if not UUID.fullmatch(melding_id):
        raise NotFound("no such melding")
    _, unroutable = await platform.as_staff(staff, "routing", "GET", "/v1/unroutable")
    for item in unroutable["items"]:
        if item["melding_id"] == melding_id and recipient_type in waiting_types(item):
            return dict(item)
    raise NotFound("not waiting")


async def _choices(platform: Platform, staff: Staff, item: dict[str, Any], recipient_type: str) -> list[Any]:
    _, organisations = await platform.as_staff(staff, "routing", "GET", "/v1/organisations")
    ranges: list[Any] = []
    if item.get("gemeente_code"):
        _, gemeente = await platform.as_staff(staff, "routing", "GET", f"/v1/gemeenten/{item['gemeente_code']}")
        ranges = gemeente.get("postcode_ranges") or []
    return candidates(item, recipient_type, organisations["items"], ranges)


async def _picker(
    request: Request, staff: Staff, platform: Platform, melding_id: str, recipient_type: str, **extra: Any
) -> Response:
    item = await _waiting_item(platform, staff, melding_id, recipient_type)
    choices = await _choices(platform, staff, item, recipient_type)
    return console_page(
        request,
        "send.html",
        422 if extra.get("error") else 200,
        title="Versturen naar een organisatie",
        item=item,
        recipient_type=recipient_type,
        type_name=type_name,
        choices=choices,
        **extra,
    )


@router.get("/beheer/wachtend/{melding_id}/versturen/{recipient_type}")
async def choose_recipient(
    request: Request, melding_id: str, recipient_type: str, staff: Operator, platform: PlatformDep
) -> Response:
    return await _picker(request, staff, platform, melding_id, recipient_type)


@router.post("/beheer/wachtend/{melding_id}/versturen/{recipient_type}")
async def send_to_recipient(
    request: Request, melding_id: str, recipient_type: str, staff: Operator, platform: PlatformDep
) -> Response:
    form = await _form(request)
    if not csrf_valid(request.session, form.get("csrf")):
        return _refused(request)
    item = await _waiting_item(platform, staff, melding_id, recipient_type)
    allowed = {org["org_id"]: org for org in await _choices(platform, staff, item, recipient_type)}
    chosen = allowed.get(form.get("org_id", ""))
    if chosen is None:
        return await _picker(request, staff, platform, melding_id, recipient_type, error="Kies een organisatie.")
    status, answer = await platform.as_staff(
        staff, "routing", "POST", f"/v1/unroutable/{melding_id}/reroute", json={"org_id": chosen["org_id"]}
    )
    if status != 200:
        message = "De melding kon niet worden verstuurd: " + str((answer or {}).get("detail", status))
        return await _picker(request, staff, platform, melding_id, recipient_type, error=message)
    reasons = still_waiting(answer.get("waiting") or [], item.get("gemeente_name") or item.get("gemeente_code"))
    return console_page(request, "sent.html", title="Verstuurd", answer=answer, org=chosen, reasons=reasons)


@router.post("/beheer/dead-letters/{dead_letter_id}/opnieuw")
async def replay(request: Request, dead_letter_id: str, staff: Operator, platform: PlatformDep) -> Response:
    if not csrf_valid(request.session, (await _form(request)).get("csrf")):
        return _refused(request)
    if not UUID.fullmatch(dead_letter_id):
        raise NotFound("no such dead letter")
    await platform.as_staff(staff, "routing", "POST", f"/v1/dead-letters/{dead_letter_id}/replay")
    return RedirectResponse("/beheer/wachtend", status_code=303)


# --- routekaarten -------------------------------------------------------------------------------------------------


def _gemeente_code(code: str) -> str:
    if not GEMEENTE_CODE.fullmatch(code):
        raise NotFound("no such gemeente")
    return code


@router.get("/beheer/routekaarten")
async def route_maps(request: Request, staff: Operator, platform: PlatformDep) -> Response:
    _, gemeenten = await platform.as_staff(staff, "routing", "GET", "/v1/gemeenten")
    return console_page(request, "route_maps.html", title="Routekaarten", gemeenten=gemeenten["items"])


async def _route_map_page(
    request: Request, staff: Staff, platform: Platform, code: str, *, preview: Any = None, preview_error: str = ""
) -> Response:
    _, gemeente = await platform.as_staff(staff, "routing", "GET", f"/v1/gemeenten/{code}")
    _, maps = await platform.as_staff(staff, "routing", "GET", f"/v1/gemeenten/{code}/route-map")
    current = maps.get("current")
    return console_page(
        request,
        "route_map.html",
        422 if preview_error else 200,
        title=f"Routekaart {gemeente['name']}",
        gemeente=gemeente,
        table=route_map_table(current, RISK_DOMAINS, RECIPIENT_TYPES),
        versions=[route_map_table(v, RISK_DOMAINS, RECIPIENT_TYPES) for v in maps.get("versions") or []],
        current_from=str(current["effective_from"]) if current else None,
        risk_domains=RISK_DOMAINS,
        type_name=type_name,
        preview=preview,
        preview_error=preview_error,
        duration_words=duration_words,
    )


@router.get("/beheer/routekaarten/{code}")
async def route_map(request: Request, code: str, staff: Operator, platform: PlatformDep) -> Response:
    return await _route_map_page(request, staff, platform, _gemeente_code(code))


@router.post("/beheer/routekaarten/{code}/voorbeeld")
async def route_preview(request: Request, code: str, staff: Operator, platform: PlatformDep) -> Response:
    """The preview is a POST: a postcode an operator types never lands in a URL (nor in access logs)."""
    form = await _form_lists(request)
    if not csrf_valid(request.session, (form.get("csrf") or [""])[0]):
        return _refused(request)
    code = _gemeente_code(code)
    postcode = (form.get("postcode") or [""])[0].replace(" ", "").upper()
    domains = [d for d in form.get("risk_domain", []) if d in RISK_DOMAINS]
    if not re.fullmatch(r"[1-9][0-9]{3}([A-Z]{2})?", postcode):
        return await _route_map_page(
            request, staff, platform, code, preview_error="Vul een postcode in, zoals 1011 AB."
        )
    query = f"postcode={postcode}" + (f"&risk_domains={','.join(domains)}" if domains else "")
    status, answer = await platform.as_staff(staff, "routing", "GET", f"/v1/route?{query}")
    if status != 200:
        return await _route_map_page(request, staff, platform, code, preview_error=str(answer.get("detail", status)))
    return await _route_map_page(request, staff, platform, code, preview=answer)


async def _edit_page(
    request: Request, staff: Staff, platform: Platform, code: str, values: dict[str, Any], error: str = ""
) -> Response:
    _, gemeente = await platform.as_staff(staff, "routing", "GET", f"/v1/gemeenten/{code}")
    return console_page(
        request,
        "route_map_edit.html",
        422 if error else 200,
        title=f"Nieuwe versie van de routekaart {gemeente['name']}",
        gemeente=gemeente,
        values=values,
        risk_domains=RISK_DOMAINS,
        recipient_types=RECIPIENT_TYPES,
        type_name=type_name,
        error=error,
    )


@router.get("/beheer/routekaarten/{code}/nieuw")
async def edit_route_map(request: Request, code: str, staff: Operator, platform: PlatformDep) -> Response:
    code = _gemeente_code(code)
    _, maps = await platform.as_staff(staff, "routing", "GET", f"/v1/gemeenten/{code}/route-map")
    values = form_prefill(maps.get("current"), RISK_DOMAINS, RECIPIENT_TYPES)
    values["effective_from"] = ""  # a new version: she names its first day
    return await _edit_page(request, staff, platform, code, values)


@router.post("/beheer/routekaarten/{code}/nieuw")
async def save_route_map(request: Request, code: str, staff: Operator, platform: PlatformDep) -> Response:
    form = await _form_lists(request)
    if not csrf_valid(request.session, (form.get("csrf") or [""])[0]):
        return _refused(request)
    code = _gemeente_code(code)
    body = route_map_from_form(form, RISK_DOMAINS, RECIPIENT_TYPES)
    if isinstance(body, FormError):
        values = form_prefill(None, RISK_DOMAINS, RECIPIENT_TYPES)
        return await _edit_page(request, staff, platform, code, values, body.message)
    status, answer = await platform.as_staff(staff, "routing", "PUT", f"/v1/gemeenten/{code}/route-map", json=body)
    if status not in (200, 201):
        problem = answer or {}
        detail = "; ".join(f"{e.get('field', '')}: {e.get('message', '')}" for e in problem.get("errors") or [])
        message = "De routekaart is niet opgeslagen: " + (detail or str(problem.get("detail", status)))
        return await _edit_page(
            request, staff, platform, code, form_prefill(body, RISK_DOMAINS, RECIPIENT_TYPES), message
        )
    return RedirectResponse(f"/beheer/routekaarten/{code}", status_code=303)


# --- organisaties -------------------------------------------------------------------------------------------------


@router.get("/beheer/organisaties")
async def organisations(request: Request, staff: Operator, platform: PlatformDep, q: str = "") -> Response:
    _, found = await platform.as_staff(staff, "routing", "GET", "/v1/organisations")
    _, gemeenten = await platform.as_staff(staff, "routing", "GET", "/v1/gemeenten")
    names = {g["code"]: g["name"] for g in gemeenten["items"]}
    return console_page(
        request,
        "organisations.html",
        title="Organisaties",
        rows=organisation_rows(found["items"], names, q[:100]),
        q=q[:100],
        type_name=type_name,
        message=request.query_params.get("melding", ""),
    )


@router.post("/beheer/organisaties/{org_id}/{change}")
async def change_organisation(
    request: Request, org_id: str, change: str, staff: Operator, platform: PlatformDep
) -> Response:
    if not csrf_valid(request.session, (await _form(request)).get("csrf")):
        return _refused(request)
    if not ORG_ID.fullmatch(org_id) or change not in ("activeren", "deactiveren"):
        raise NotFound("no such organisation")
    if change == "deactiveren":
        await platform.as_staff(staff, "routing", "DELETE", f"/v1/organisations/{org_id}")
        return RedirectResponse("/beheer/organisaties?melding=gedeactiveerd", status_code=303)
    _, organisation = await platform.as_staff(staff, "routing", "GET", f"/v1/organisations/{org_id}")
    status, _answer = await platform.as_staff(
        staff, "routing", "PUT", f"/v1/organisations/{org_id}", json=reactivated(organisation)
    )
    outcome = "geactiveerd" if status in (200, 201) else "niet-geactiveerd"
    return RedirectResponse(f"/beheer/organisaties?melding={outcome}", status_code=303)


# --- cijfers ------------------------------------------------------------------------------------------------------

INTERVALS = {"maand": "month", "kwartaal": "quarter", "jaar": "year"}
ISO_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _figures_query(request: Request) -> tuple[dict[str, str], str]:
    """The figures' query from the page's form (defaults: this quarter, by month, the country); an error in words."""
    today = today_nl()
    quarter_start = today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
    asked = request.query_params
    gemeente = asked.get("gemeente", "").strip().upper()
    region = asked.get("regio", "").strip().upper()
    first, last = asked.get("van", quarter_start.isoformat()), asked.get("tot", today.isoformat())
    interval = asked.get("interval", "maand")
    query = {"from": first, "to": last, "interval": INTERVALS.get(interval, "")}
    if gemeente:
        query["gemeente"] = gemeente
    if region:
        query["region"] = region
    if gemeente and not GEMEENTE_CODE.fullmatch(gemeente):
        return query, "Vul een gemeentecode in zoals GM0363, of laat het veld leeg voor een regio of heel Nederland."
    if region and not REGION_CODE.fullmatch(region):
        return query, "Kies een GGD-regio uit de lijst, of geen regio voor een gemeente of heel Nederland."
    if gemeente and region:
        return query, "Kies een gemeente of een GGD-regio, niet allebei."
    if not (ISO_DAY.fullmatch(first) and ISO_DAY.fullmatch(last)) or interval not in INTERVALS:
        return query, "Vul de periode in als JJJJ-MM-DD en kies per maand, kwartaal of jaar."
    return query, ""


async def _figures(request: Request, staff: Staff, platform: Platform) -> tuple[dict[str, str], Any, str]:
    """The figures the page's form asks for, read on her behalf: the query, the document (None on an error) and
    the error in words."""
    query, error = _figures_query(request)
    if error:
        return query, None, error
    status, answer = await platform.as_staff(staff, "melding", "GET", "/v1/figures", params=query)
    if status != 200:
        return query, None, "Deze cijfers kunnen zo niet: " + str((answer or {}).get("detail", status))
    return query, answer, ""


@router.get("/beheer/cijfers")
async def figures(request: Request, staff: Coordinator, platform: PlatformDep) -> Response:
    query, document, error = await _figures(request, staff, platform)
    status, regions = await platform.as_staff(staff, "melding", "GET", "/v1/figures/regions")
    form = {
        "gemeente": query.get("gemeente", ""),
        "regio": query.get("region", ""),
        "van": query["from"],
        "tot": query["to"],
        "interval": {v: k for k, v in INTERVALS.items()}.get(query["interval"], "maand"),
    }
    return console_page(
        request,
        "figures.html",
        422 if error else 200,
        title="Cijfers",
        form=form,
        regions=region_choices(regions) if status == 200 else [],
        error=error,
        document=document,
        view=figures_view(document, today_nl()) if document else None,
        query_string=urlencode({k: v for k, v in form.items() if v}),  # the form's fields only: no personal data
    )


@router.get("/beheer/cijfers.csv")
async def figures_download(request: Request, staff: Coordinator, platform: PlatformDep) -> Response:
    _query, document, error = await _figures(request, staff, platform)
    if error:
        return console_page(request, "error.html", 422, title="Cijfers", message=error)
    return Response(
        figures_csv(document),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="kansrijke-start-cijfers.csv"'},
    )


@router.get("/beheer/cijfers/rapport.html")
async def figures_report(request: Request, staff: Coordinator, platform: PlatformDep) -> Response:
    """The report page `kansrijk report` writes, rendered by the melding service (one renderer), as a download."""
    query, error = _figures_query(request)
    if error:
        return console_page(request, "error.html", 422, title="Cijfers", message=error)
    status, body = await platform.staff_page(staff, "melding", "/v1/figures/report", query)
    if status != 200:
        return console_page(request, "error.html", 422, title="Cijfers", message="Deze cijfers kunnen zo niet.")
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="kansrijke-start-rapport.html"'},
    )


# A chart is an image of its own (the page's CSP allows no inline SVG with matplotlib's style attributes); its own
# policy lets its styles apply when it is opened by itself, and runs nothing.
CHART_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


class ChartCache:
    """The charts of one figures query for one person, drawn once for the page's images together: the first
    image asks the melding service for all of them (one read of the figures, one audit record) and the others
    wait for that answer. Figures only, never personal data; kept a few minutes, for a few queries."""

    def __init__(self, seconds: float = 300.0, size: int = 32) -> None:
        self.seconds, self.size = seconds, size
        self._entries: OrderedDict[tuple[str, ...], tuple[float, asyncio.Future[dict[str, str]]]] = OrderedDict()

    async def charts(self, key: tuple[str, ...], draw: Callable[[], Awaitable[dict[str, str]]]) -> dict[str, str]:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            entry = (now + self.seconds, asyncio.ensure_future(draw()))
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        try:
            return await asyncio.shield(entry[1])
        except Exception:
            if self._entries.get(key) is entry:  # a failure is not kept: the next image asks again
                del self._entries[key]
            raise


def _chart_cache(request: Request) -> ChartCache:
    cache: ChartCache | None = getattr(request.app.state, "console_charts", None)
    if cache is None:
        cache = request.app.state.console_charts = ChartCache()
    return cache


class ChartsUnavailable(Exception):
    """The melding service did not draw these charts (a 4xx): the image answers 422."""


@router.get("/beheer/cijfers/grafiek/{name}.svg")
async def figures_chart(request: Request, name: str, staff: Coordinator, platform: PlatformDep) -> Response:
    """One chart of the report, drawn by the melding service (the renderer of `kansrijk report`), for an `<img>`
    on the Cijfers page. Its query is the page's: gemeente or region code, period, interval."""
    query, error = _figures_query(request)
    if name not in CHARTS:
        raise NotFound("no such chart")
    if error:
        return console_page(request, "error.html", 422, title="Cijfers", message=error)

    async def draw() -> dict[str, str]:
        status, answer = await platform.as_staff(staff, "melding", "GET", "/v1/figures/charts", params=query)
        if status != 200:
            raise ChartsUnavailable
        return dict(answer["charts"])

    key = (staff.sub, staff.org_id, *sorted(f"{k}={v}" for k, v in query.items()))
    try:
        drawn = await _chart_cache(request).charts(key, draw)
    except ChartsUnavailable:
        return console_page(request, "error.html", 422, title="Cijfers", message="Deze cijfers kunnen zo niet.")
    if name not in drawn:  # e.g. by gemeente, for a gemeente's own figures
        raise NotFound("no such chart for these figures")
    return Response(drawn[name], media_type="image/svg+xml", headers={"Content-Security-Policy": CHART_POLICY})


# --- toegang (the audit log, for a privacy officer) ---------------------------------------------------------------


@router.get("/beheer/toegang")
async def access_search_form(request: Request, staff: Auditor) -> Response:
    return console_page(request, "access.html", title="Toegang: wie zag wiens gegevens")


@router.post("/beheer/toegang")
async def access_search(request: Request, staff: Auditor, platform: PlatformDep) -> Response:
    """The BSN travels in the form's body and on to the services' body: never in a URL; the page never shows it."""
    form = await _form(request)
    if not csrf_valid(request.session, form.get("csrf")):
        return _refused(request)
    bsn = form.get("bsn", "").replace(" ", "")
    if not is_valid_bsn(bsn):
        return console_page(
            request, "access.html", 422, title="Toegang: wie zag wiens gegevens",
            error="Dit is geen geldig burgerservicenummer (9 cijfers die de elfproef doorstaan).",
        )  # fmt: skip
    _, answer = await platform.as_staff(staff, "consent", "POST", "/v1/audit/_search", json={"bsn": bsn})
    return console_page(
        request, "access.html", title="Toegang: wie zag wiens gegevens", records=answer["items"], searched=True
    )
