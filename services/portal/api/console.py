"""The console's pages (/beheer/) for the coalition's operators and coordinators: parse, call the services on the
person's behalf, render. The rules are in services/portal/domain/console.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.portal.adapters.oidc import OAuthError, Provider
from services.portal.adapters.platform import Platform
from services.portal.adapters.sessions import ROTATE
from services.portal.api.routes import TEMPLATES, UUID, _limited
from services.portal.api.security import csrf_token, csrf_valid
from services.portal.domain.console import (
    NoAccess,
    Staff,
    candidates,
    console_access,
    type_name,
    waiting_list,
    waiting_types,
)
from shared.errors import NotFound

STAFF = "staff"

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
PlatformDep = Annotated[Platform, Depends(_platform)]


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form of a few short fields (no multipart parser needed); the first value of each."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    parsed = parse_qs((await request.body())[:8192].decode(errors="replace"))
    return {key: values[0] for key, values in parsed.items()}


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


@router.get("/beheer/inloggen")
async def console_log_in(request: Request) -> Response:
    if refused := _limited(request):
        return refused
    settings = request.app.state.settings
    return await _provider(request).start_login(request, f"{settings.public_url}/beheer/auth/callback")


@router.get("/beheer/auth/callback")
async def console_logged_in(request: Request) -> Response:
    if refused := _limited(request):
        return refused
    settings = request.app.state.settings
    try:
        claims, id_token = await _provider(request).finish_login(request)
    except OAuthError:
        return console_page(
            request,
            "error.html",
            400,
            title="Inloggen is niet gelukt",
            message="Het inloggen is niet gelukt of afgebroken. Probeer het opnieuw.",
        )
    decision = console_access(
        claims,
        roles_claim=settings.console_roles_claim,
        org_claim=settings.console_org_claim,
        role_scopes=settings.console_role_scopes,
    )
    request.session.clear()
    if isinstance(decision, NoAccess):
        return console_page(request, "forbidden.html", 403, title="Geen toegang")
    request.session.update({STAFF: decision.as_session(), "console_id_token": id_token, ROTATE: True})
    return RedirectResponse("/beheer/", status_code=303)


@router.get("/beheer/uitloggen")
async def console_confirm_logout(request: Request) -> Response:
    return console_page(request, "logout.html", title="Uitloggen")


@router.post("/beheer/uitloggen")
async def console_log_out(request: Request) -> Response:
    if not csrf_valid(request.session, (await _form(request)).get("csrf")):
        return _refused(request)
    request.session.clear()
    return RedirectResponse("/beheer/", status_code=303)


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
    return console_page(request, "sent.html", title="Verstuurd", answer=answer, org=chosen)


@router.post("/beheer/dead-letters/{dead_letter_id}/opnieuw")
async def replay(request: Request, dead_letter_id: str, staff: Operator, platform: PlatformDep) -> Response:
    if not csrf_valid(request.session, (await _form(request)).get("csrf")):
        return _refused(request)
    if not UUID.fullmatch(dead_letter_id):
        raise NotFound("no such dead letter")
    await platform.as_staff(staff, "routing", "POST", f"/v1/dead-letters/{dead_letter_id}/replay")
    return RedirectResponse("/beheer/wachtend", status_code=303)
