"""Signing in and out with OpenID Connect, once for both audiences of the portal: the woman (DigiD through a
broker: her pages) and the coalition's people (the console, /beheer/). The flow is the same — start at the
provider, come back, decide who may in, a fresh session, out again with a CSRF-checked form — and an
`Audience` says what differs: its paths, its provider, its pages and who it admits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.portal.adapters.oidc import OAuthError, Provider
from services.portal.adapters.sessions import ROTATE
from services.portal.api.security import LoginLimiter, csrf_valid

Page = Callable[..., HTMLResponse]  # (request, template, status_code=200, **context) -> the page


@dataclass(frozen=True)
class Audience:
    """Who signs in where. `admit(request, claims)` gives what goes in the new session, or the page that says
    why not (403); `id_token_key` is where the session keeps the ID token (for the provider's logout)."""

    prefix: str  # "" (her pages) or "/beheer" (the console)
    home: str  # where a signed-in person lands
    provider: Callable[[Request], Provider]
    page: Page
    admit: Callable[[Request, dict[str, Any]], dict[str, Any] | HTMLResponse]
    id_token_key: str
    logged_out: str  # where logging out ends
    # RP-initiated logout: the provider ends its session too, then sends the browser back to `logged_out`.
    end_provider_session: bool

    def callback_url(self, request: Request) -> str:
        return f"{request.app.state.settings.public_url}{self.prefix}/auth/callback"


def limited(request: Request, page: Page) -> HTMLResponse | None:
    """Too many logins from one address in a minute: a page that says wait (429), else None."""
    limiter: LoginLimiter = request.app.state.login_limiter
    if limiter.allow(request.client.host if request.client else "-"):
        return None
    return page(
        request,
        "error.html",
        429,
        title="Even wachten",
        message="U heeft het vaak achter elkaar geprobeerd. Wacht een minuut en probeer het dan opnieuw.",
    )


async def start(request: Request, audience: Audience) -> Response:
    if refused := limited(request, audience.page):
        return refused
    return await audience.provider(request).start_login(request, audience.callback_url(request))


async def finish(request: Request, audience: Audience) -> Response:
    """The provider's answer: verified (state, PKCE, nonce, the ID token's signature), then a fresh session
    (a new id: ROTATE) with what `admit` gives, or its refusal and no session."""
    if refused := limited(request, audience.page):
        return refused
    try:
        claims, id_token = await audience.provider(request).finish_login(request)
    except OAuthError:
        return audience.page(
            request,
            "error.html",
            400,
            title="Inloggen is niet gelukt",
            message="Het inloggen is niet gelukt of afgebroken. Probeer het opnieuw.",
        )
    admitted = audience.admit(request, claims)
    request.session.clear()
    if isinstance(admitted, HTMLResponse):
        return admitted
    request.session.update({**admitted, audience.id_token_key: id_token, ROTATE: True})
    return RedirectResponse(audience.home, status_code=303)


def confirm_logout(request: Request, audience: Audience) -> Response:
    return audience.page(request, "logout.html", title="Uitloggen")


async def submitted_csrf(request: Request) -> str | None:
    """A form's CSRF token (a urlencoded form of one field: no multipart parser needed)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    values = parse_qs((await request.body())[:4096].decode(errors="replace")).get("csrf")
    return values[0] if values else None


async def log_out(request: Request, audience: Audience) -> Response:
    if not csrf_valid(request.session, await submitted_csrf(request)):
        return audience.page(
            request,
            "error.html",
            403,
            title="Dat ging niet goed",
            message="U bent nog niet uitgelogd. Ga terug en probeer het opnieuw.",
        )
    id_token = str(request.session.get(audience.id_token_key, ""))
    request.session.clear()
    if not audience.end_provider_session:
        return RedirectResponse(audience.logged_out, status_code=303)
    back = f"{request.app.state.settings.public_url}{audience.logged_out}"
    try:
        at_provider = await audience.provider(request).logout_url(id_token, back)
    except (OAuthError, httpx.HTTPError):
        at_provider = None
    return RedirectResponse(at_provider or back, status_code=303)


def routes(audience: Audience) -> APIRouter:
    """The four addresses of an audience's flow, under its prefix: `/inloggen`, `/auth/callback` (the
    provider's redirect) and `/uitloggen` (the confirmation page, and its form's POST)."""
    router = APIRouter(prefix=audience.prefix, include_in_schema=False)

    @router.get("/inloggen")
    async def log_in(request: Request) -> Response:
        return await start(request, audience)

    @router.get("/auth/callback")
    async def logged_in(request: Request) -> Response:
        return await finish(request, audience)

    @router.get("/uitloggen")
    async def confirm(request: Request) -> Response:
        return confirm_logout(request, audience)

    @router.post("/uitloggen")
    async def out(request: Request) -> Response:
        return await log_out(request, audience)

    return router
