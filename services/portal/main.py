"""The portal: "Mijn Kansrijke Start", the woman's own view, server-rendered pages in plain Dutch.

She logs in with DigiD through an OpenID Connect provider, sees her consents (and withdraws one), the meldingen
about her and who received them, who accessed her data, and downloads a copy. The portal keeps no data of its own:
it reads the services' APIs with a short-lived token bound to her keyed BSN, made on the server per page.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.portal.adapters.oidc import Provider
from services.portal.adapters.platform import Platform
from services.portal.adapters.sessions import SessionMiddleware, SessionStore
from services.portal.api import console
from services.portal.api.routes import LoginRequired, page, router
from services.portal.api.security import LoginLimiter, SecurityHeadersMiddleware, content_security_policy
from services.portal.config import PortalSettings
from shared.auth import pem_text, signing_key_for
from shared.crypto import cipher_for
from shared.errors import NotFound, Unavailable
from shared.observability import configure_logging

STATIC = Path(__file__).parent / "api" / "static"


def create_app(
    settings: PortalSettings | None = None,
    *,
    run_workers: bool = True,  # the portal has none; the signature is the other services'
    tracer_provider: object | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    configure_logs: bool = True,
) -> FastAPI:
    settings = settings or PortalSettings()
    if not settings.oidc_issuer:
        raise ValueError(
            "KANSRIJK_PORTAL_OIDC_ISSUER is not set: `kansrijk up` starts a development provider beside the "
            "services; otherwise name the provider she logs in with"
        )
    if configure_logs:
        configure_logging(settings.service_name, settings.log_level)
    platform = Platform(
        key=signing_key_for(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        urls={"consent": settings.consent_url, "melding": settings.melding_url, "routing": settings.routing_url},
        timeout=settings.service_timeout_seconds,
        transport=transport,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await platform.aclose()

    app = FastAPI(title="Mijn Kansrijke Start", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.platform = platform
    app.state.cipher = cipher_for(settings)
    app.state.provider = Provider(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        private_key_pem=pem_text(settings.oidc_private_key) if settings.oidc_private_key else "",
    )
    # The console (/beheer/): its people sign in with their organisation's provider; none configured, no console.
    app.state.console_provider = (
        Provider(
            issuer=settings.console_oidc_issuer,
            client_id=settings.console_oidc_client_id,
            client_secret=settings.console_oidc_client_secret,
            scope="openid profile",  # her name, to greet her and to show whom the session is for
        )
        if settings.console_oidc_issuer
        else None
    )
    app.state.login_limiter = LoginLimiter(settings.login_attempts_per_minute)
    form_targets = {
        f"{u.scheme}://{u.netloc}"
        for u in map(urlsplit, [settings.oidc_issuer, settings.console_oidc_issuer])
        if u.netloc
    }
    app.state.sessions = SessionStore(settings.session_idle_seconds)
    app.add_middleware(SessionMiddleware, store=app.state.sessions, secure=not settings.is_development)
    app.add_middleware(
        SecurityHeadersMiddleware,
        csp=content_security_policy(sorted(form_targets)),
        https=not settings.is_development,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    app.include_router(console.router)

    @app.exception_handler(console.StaffLoginRequired)
    async def to_console_start(_request: Request, _exc: console.StaffLoginRequired) -> Response:
        return RedirectResponse("/beheer/", status_code=303)

    @app.exception_handler(console.NoRole)
    async def no_role(request: Request, _exc: console.NoRole) -> Response:
        return console.console_page(request, "forbidden.html", 403, title="Geen toegang")

    @app.exception_handler(LoginRequired)
    async def to_start(_request: Request, _exc: LoginRequired) -> Response:
        return RedirectResponse("/", status_code=303)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, _exc: NotFound) -> Response:
        if request.url.path.startswith("/beheer"):
            return console.console_page(
                request, "error.html", 404, title="Niet gevonden", message="Deze pagina bestaat niet (meer)."
            )
        return page(request, "error.html", 404, title="Niet gevonden", message="Deze pagina bestaat niet (meer).")

    @app.exception_handler(404)
    async def no_page(request: Request, _exc: Exception) -> Response:
        return page(request, "error.html", 404, title="Niet gevonden", message="Deze pagina bestaat niet.")

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, _exc: Unavailable) -> Response:
        return page(
            request,
            "error.html",
            503,
            title="Het lukt nu even niet",
            message="Wij kunnen uw gegevens nu niet ophalen. Probeer het over een paar minuten opnieuw.",
        )

    return app
