"""The portal's pages in-process, with a fake of the services (what they would answer her): login required,
CSRF on every POST, her session's cookie and idle timeout, the security headers, the refusal of a weak setup."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.portal.adapters.sessions import COOKIE, SessionStore
from services.portal.api.security import LoginLimiter
from services.portal.config import PortalSettings
from services.portal.main import create_app
from shared.errors import NotFound
from tests.unit.portal.test_her_view import CONSENT, MELDING

REF = "a" * 64
ACTIVE = {**CONSENT, "status": "active", "withdrawn_at": None, "withdrawn_by": None}


class FakePlatform:
    """The services as they answer one woman (REF); nothing for anyone else."""

    def __init__(self) -> None:
        self.consents_of = {REF: [copy.deepcopy(ACTIVE)]}
        self.withdrawn: list[str] = []

    async def consents(self, ref: str) -> list[dict[str, Any]]:
        return self.consents_of.get(ref, [])

    async def meldingen(self, ref: str) -> list[dict[str, Any]]:
        return [MELDING] if ref == REF else []

    async def access_records(self, ref: str) -> tuple[list[dict[str, Any]], bool]:
        return [], True

    async def withdraw(self, ref: str, consent_id: str) -> dict[str, Any]:
        for consent in self.consents_of.get(ref, []):
            if consent["id"] == consent_id:
                self.withdrawn.append(consent_id)
                consent.update(
                    status="withdrawn", withdrawn_at="2026-11-25T09:00:00Z", withdrawn_by={"type": "patient"}
                )
                return consent
        raise NotFound("not hers")

    async def aclose(self) -> None:
        pass


@pytest.fixture
def app(tmp_path: Path) -> Any:
    settings = PortalSettings(data_dir=tmp_path, oidc_issuer="http://127.0.0.1:9", port=8005)
    app = create_app(settings, configure_logs=False)
    app.state.platform = FakePlatform()
    return app


def logged_in(app: Any, ref: str = REF) -> dict[str, str]:
    """Her session as the login leaves it (the provider is not part of these tests)."""
    store: SessionStore = app.state.sessions
    store.save("her-session", {"patient_ref": ref, "id_token": "", "csrf": "the-token"})
    return {COOKIE: "her-session"}


def client(app: Any, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal", cookies=cookies)


async def test_her_pages_need_a_login(app: Any) -> None:
    async with client(app) as anonymous:
        for path in ("/mijn", "/mijn/toestemmingen", "/mijn/meldingen", "/mijn/inzage", "/mijn/download"):
            answer = await anonymous.get(path)
            assert (answer.status_code, answer.headers["location"]) == (303, "/"), path
        assert (await anonymous.post(f"/mijn/toestemmingen/{ACTIVE['id']}/intrekken")).status_code == 303
    assert app.state.platform.withdrawn == []


async def test_every_page_has_a_strict_csp_and_is_not_cached(app: Any) -> None:
    async with client(app, logged_in(app)) as her:
        page = await her.get("/mijn/toestemmingen")
    csp = page.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "<script" not in page.text and "style=" not in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"


async def test_withdrawing_needs_the_forms_csrf_token(app: Any) -> None:
    url = f"/mijn/toestemmingen/{ACTIVE['id']}/intrekken"
    async with client(app, logged_in(app)) as her:
        confirm = await her.get(url)
        assert confirm.status_code == 200 and 'value="the-token"' in confirm.text
        for forged in ({}, {"csrf": "guessed"}):
            assert (await her.post(url, data=forged)).status_code == 403
        assert app.state.platform.withdrawn == []
        done = await her.post(url, data={"csrf": "the-token"})
        assert (done.status_code, done.headers["location"]) == (303, f"/mijn/toestemmingen/{ACTIVE['id']}/ingetrokken")
        receipt = await her.get(done.headers["location"])
    assert app.state.platform.withdrawn == [ACTIVE["id"]] and "door uzelf" in receipt.text


async def test_another_womans_consent_is_not_found(app: Any) -> None:
    async with client(app, logged_in(app, "b" * 64)) as other:
        assert (await other.get(f"/mijn/toestemmingen/{ACTIVE['id']}/intrekken")).status_code == 404
        assert (
            await other.post(f"/mijn/toestemmingen/{ACTIVE['id']}/intrekken", data={"csrf": "the-token"})
        ).status_code == 404
        nothing = await other.get("/mijn/toestemmingen")
        assert "geen gegevens over u" in nothing.text and "Verloskundige" not in nothing.text
    assert app.state.platform.withdrawn == []


async def test_a_note_is_shown_as_text_never_as_markup(app: Any) -> None:
    app.state.platform.meldingen = _meldingen_with_note('<img src=x onerror="alert(1)">')
    async with client(app, logged_in(app)) as her:
        page = await her.get("/mijn/meldingen")
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text


def _meldingen_with_note(note: str) -> Any:
    async def meldingen(ref: str) -> list[dict[str, Any]]:
        melding = copy.deepcopy(MELDING)
        melding["recipients"][0]["note"] = note
        return [melding]

    return meldingen


async def test_the_session_cookie_is_opaque_httponly_lax_and_gone_when_she_logs_out(app: Any) -> None:
    async with client(app, logged_in(app)) as her:
        page = await her.get("/uitloggen")
        cookie = page.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # development: http
        out = await her.post("/uitloggen", data={"csrf": "the-token"})
        assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert app.state.sessions.load("her-session") is None


def test_a_session_idle_for_15_minutes_is_gone() -> None:
    now = [0.0]
    store = SessionStore(900, clock=lambda: now[0])
    store.save("s", {"patient_ref": REF})
    now[0] = 899.0
    assert store.load("s") == {"patient_ref": REF}
    store.save("s", {"patient_ref": REF})  # she opened a page: the 15 minutes start again
    now[0] = 899.0 + 901
    assert store.load("s") is None


def test_logins_are_limited_per_client() -> None:
    now = [0.0]
    limiter = LoginLimiter(3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")
    now[0] = 60.0
    assert limiter.allow("a")


@pytest.mark.parametrize("issuer", ["", "http://idp.example.nl", "https://localhost:8443", "https://127.0.0.1"])
def test_production_refuses_to_start_without_a_real_provider(tmp_path: Path, issuer: str) -> None:
    with pytest.raises(ValueError, match="KANSRIJK_PORTAL_OIDC_ISSUER"):
        PortalSettings(**_production(tmp_path), oidc_issuer=issuer)


def test_production_with_a_real_provider_starts(tmp_path: Path) -> None:
    settings = PortalSettings(**_production(tmp_path), oidc_issuer="https://digid-broker.gemeente.example.nl")
    assert not settings.is_development


def test_production_needs_no_broker_it_never_uses(tmp_path: Path) -> None:
    """The portal has no broker: a deployment gives it no AMQP credentials (least privilege), and the shared
    refusal of the placeholder `guest` password must not stop it for a URL it never opens."""
    without_broker = {k: v for k, v in _production(tmp_path).items() if k != "amqp_url"}
    settings = PortalSettings(**without_broker, oidc_issuer="https://digid-broker.gemeente.example.nl")
    assert not settings.is_development


def _production(tmp_path: Path) -> dict[str, Any]:
    return {
        "environment": "production", "data_dir": tmp_path, "jwt_issuer": "https://issuer.example.nl",
        "jwt_jwks_url": "https://issuer.example.nl/jwks", "encryption_keys": "k1=" + "A" * 43,
        "bsn_hash_key": "B" * 44, "oidc_client_secret": "s3cr3t-value", "service_token_key": "/keys/portal.pem",
        "public_url": "https://mijn.kansrijk.example.nl", "amqp_url": "amqp://u:strong@mq/",
        "database_url": "sqlite+aiosqlite:///unused.db",
    }  # fmt: skip


async def test_development_without_a_provider_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kansrijk up"):
        create_app(PortalSettings(data_dir=tmp_path), configure_logs=False)


async def test_outside_development_the_session_cookie_is_secure() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from services.portal.adapters.sessions import SessionMiddleware

    async def remember(request: Request) -> PlainTextResponse:
        request.session["patient_ref"] = REF
        return PlainTextResponse("ok")

    app = SessionMiddleware(Starlette(routes=[Route("/", remember)]), SessionStore(900), secure=True)
    async with client(app) as browser:
        cookie = (await browser.get("/")).headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and REF not in cookie


async def test_reading_the_start_page_makes_no_session(app: Any) -> None:
    async with client(app) as anonymous:
        start = await anonymous.get("/")
    assert start.status_code == 200 and "set-cookie" not in start.headers


def test_a_full_session_store_forgets_the_least_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.portal.adapters import sessions

    monkeypatch.setattr(sessions, "MAX_SESSIONS", 10)
    now = [0.0]
    store = SessionStore(900, clock=lambda: now[0])
    for n in range(10):
        now[0] = float(n)
        store.save(f"s{n}", {"n": n})
    store.save("new", {"n": 10})
    assert store.load("s0") is None and store.load("s9") == {"n": 9} and store.load("new") == {"n": 10}
