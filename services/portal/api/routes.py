"""The portal's pages: parse, call a use case, render. No rules here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.portal.adapters.oidc import Provider
from services.portal.adapters.platform import Platform
from services.portal.api import login
from services.portal.api.login import Audience
from services.portal.api.security import csrf_token, csrf_valid
from services.portal.domain.login import LoggedIn, login_decision
from services.portal.service_layer import her_view
from shared.crypto import FieldCipher
from shared.errors import NotFound

# Every value is escaped (autoescape), whatever the template: a note a care provider wrote is text, never markup.
TEMPLATES = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PATIENT_REF = "patient_ref"

router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):
    """No session with a logged-in woman: to the start page."""


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    logged_in = PATIENT_REF in request.session
    context.update(
        # only her forms post: an anonymous visitor gets no session (and no server memory) for reading a page
        csrf=csrf_token(request.session) if logged_in else "",
        logged_in=logged_in,
        path=request.url.path,
    )
    response: HTMLResponse = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)
    return response


def _patient_ref(request: Request) -> str:
    ref = request.session.get(PATIENT_REF)
    if not isinstance(ref, str):
        raise LoginRequired
    return ref


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PatientRef = Annotated[str, Depends(_patient_ref)]
PlatformDep = Annotated[Platform, Depends(_platform)]


def _provider(request: Request) -> Provider:
    provider: Provider = request.app.state.provider
    return provider


@router.get("/")
async def start(request: Request) -> Response:
    if PATIENT_REF in request.session:
        return RedirectResponse("/mijn", status_code=303)
    return page(request, "start.html", title="Mijn Kansrijke Start")


def _admit(request: Request, claims: dict[str, Any]) -> dict[str, Any] | HTMLResponse:
    """Her BSN at a high enough DigiD level: the session keeps a reference to it, never the BSN itself."""
    settings = request.app.state.settings
    decision = login_decision(claims, bsn_claim=settings.bsn_claim, loa_claim=settings.loa_claim)
    if not isinstance(decision, LoggedIn):
        request.session.clear()  # her refusal page is rendered without a session
        return page(request, f"refused_{decision.reason.replace('-', '_')}.html", 403, title="Inloggen kan zo niet")
    cipher: FieldCipher = request.app.state.cipher
    return {PATIENT_REF: cipher.bsn_ref(decision.bsn)}


HER = Audience(
    prefix="",
    home="/mijn",
    provider=_provider,
    page=page,
    admit=_admit,
    id_token_key="id_token",
    logged_out="/uitgelogd",
    end_provider_session=True,
)


router.include_router(login.routes(HER))


@router.get("/mijn")
async def home(request: Request, patient_ref: PatientRef) -> Response:
    return page(request, "home.html", title="Mijn Kansrijke Start")


@router.get("/mijn/toestemmingen")
async def consents(request: Request, patient_ref: PatientRef, platform: PlatformDep) -> Response:
    found = await her_view.her_consents(platform, patient_ref)
    if found.nothing_about_her:
        return page(request, "nothing.html", title="Geen gegevens over u")
    return page(request, "consents.html", title="Mijn toestemmingen", consents=found.rows)


def _consent_id(consent_id: str) -> str:
    if not UUID.fullmatch(consent_id):
        raise NotFound("no such consent")
    return consent_id


@router.get("/mijn/toestemmingen/{consent_id}/intrekken")
async def confirm_withdrawal(
    request: Request, consent_id: str, patient_ref: PatientRef, platform: PlatformDep
) -> Response:
    row = await her_view.her_consent(platform, patient_ref, _consent_id(consent_id))
    if row is None:
        raise NotFound("not hers")
    if not row.can_withdraw:
        return RedirectResponse(f"/mijn/toestemmingen/{consent_id}/ingetrokken", status_code=303)
    return page(request, "withdraw_confirm.html", title="Toestemming intrekken", consent=row)


@router.post("/mijn/toestemmingen/{consent_id}/intrekken")
async def withdraw(
    request: Request,
    consent_id: str,
    patient_ref: PatientRef,
    platform: PlatformDep,
) -> Response:
    if not csrf_valid(request.session, await login.submitted_csrf(request)):
        return page(
            request,
            "error.html",
            403,
            title="Dat ging niet goed",
            message="Uw verzoek is niet uitgevoerd. Ga terug en probeer het opnieuw.",
        )
    await her_view.withdraw(platform, patient_ref, _consent_id(consent_id))
    return RedirectResponse(f"/mijn/toestemmingen/{consent_id}/ingetrokken", status_code=303)


@router.get("/mijn/toestemmingen/{consent_id}/ingetrokken")
async def withdrawal_receipt(
    request: Request, consent_id: str, patient_ref: PatientRef, platform: PlatformDep
) -> Response:
    row = await her_view.her_consent(platform, patient_ref, _consent_id(consent_id))
    if row is None or row.can_withdraw:
        raise NotFound("not hers, or not withdrawn")
    return page(request, "withdraw_receipt.html", title="Uw toestemming is ingetrokken", consent=row)


@router.get("/mijn/meldingen")
async def meldingen(request: Request, patient_ref: PatientRef, platform: PlatformDep) -> Response:
    rows = await her_view.her_meldingen(platform, patient_ref)
    return page(request, "meldingen.html", title="Mijn meldingen", meldingen=rows)


@router.get("/mijn/inzage")
async def access(request: Request, patient_ref: PatientRef, platform: PlatformDep) -> Response:
    log = await her_view.her_access_log(platform, patient_ref)
    return page(request, "access.html", title="Wie heeft mijn gegevens gezien", log=log)


@router.get("/mijn/download")
async def download(request: Request, patient_ref: PatientRef, platform: PlatformDep) -> Response:
    copy = await her_view.her_copy(platform, patient_ref)
    return Response(
        json.dumps(copy, ensure_ascii=False, indent=2),
        media_type="application/json; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="mijn-kansrijke-start.json"'},
    )


@router.get("/uitgelogd")
async def logged_out(request: Request) -> Response:
    return page(request, "logged_out.html", title="U bent uitgelogd")


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}
