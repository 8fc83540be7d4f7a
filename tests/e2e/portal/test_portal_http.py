"""The portal over plain HTTP (no browser): login through the embedded provider, her pages, the withdrawal with its
CSRF token, the refusals. The browser test (tests/e2e/test_portal.py) walks the same way with Chromium."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.e2e.flow import BSN, consented_patient, record_consent
from tests.support import Tokens

Clients = dict[str, httpx.AsyncClient]


async def log_in(browser: httpx.AsyncClient, portal: str, bsn: str, level: str = "substantieel") -> httpx.Response:
    """What she does: start at the portal, fill in the provider's form, come back."""
    to_provider = await browser.get(f"{portal}/inloggen")
    assert to_provider.status_code in (302, 303), to_provider.text
    authorize = to_provider.headers["location"]
    asked = parse_qs(urlsplit(authorize).query)
    # authorization code flow with PKCE (S256), state and nonce; nothing about her in the URL
    assert asked["response_type"] == ["code"] and asked["code_challenge_method"] == ["S256"]
    assert asked["code_challenge"][0] and asked["state"][0] and asked["nonce"][0] and "code_verifier" not in asked
    form = await browser.get(authorize)
    assert form.status_code == 200 and 'name="bsn"' in form.text
    back = await browser.post(authorize, data={"bsn": bsn, "level": level})
    assert back.status_code in (302, 303), back.text
    return await browser.get(back.headers["location"])


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token in the form"
    return found.group(1)


async def test_she_logs_in_sees_her_consents_and_withdraws_one(system: Clients, tokens: Tokens, portal: str) -> None:
    first = await record_consent(system, tokens, types=["jgz"])
    await record_consent(system, tokens, types=["wijkteam"])
    async with httpx.AsyncClient() as browser:
        landed = await log_in(browser, portal, BSN)
        assert landed.status_code == 303 and landed.headers["location"] == "/mijn"
        cookie = landed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert BSN not in cookie and "eyJ" not in cookie  # an opaque id: no token, no BSN
        page = await browser.get(f"{portal}/mijn/toestemmingen")
        assert page.status_code == 200 and page.text.count("Intrekken") == 2
        assert "script-src 'none'" in page.headers["content-security-policy"]
        assert BSN not in page.text
        confirm = await browser.get(f"{portal}/mijn/toestemmingen/{first}/intrekken")
        assert confirm.status_code == 200
        # without the form's token nothing happens
        forged = await browser.post(f"{portal}/mijn/toestemmingen/{first}/intrekken", data={"csrf": "x"})
        assert forged.status_code == 403
        still = await browser.get(f"{portal}/mijn/toestemmingen")
        assert still.text.count("Intrekken") == 2
        done = await browser.post(
            f"{portal}/mijn/toestemmingen/{first}/intrekken", data={"csrf": csrf_of(confirm.text)}
        )
        assert done.status_code == 303
        receipt = await browser.get(portal + done.headers["location"])
        assert receipt.status_code == 200 and "door uzelf" in receipt.text
        copy = await browser.get(f"{portal}/mijn/download")
        assert copy.headers["content-disposition"].startswith("attachment")
        assert {c["id"] for c in copy.json()["toestemmingen"]} >= {first}
        logout = await browser.get(f"{portal}/uitloggen")
        out = await browser.post(f"{portal}/uitloggen", data={"csrf": csrf_of(logout.text)})
        assert out.status_code == 303 and "end_session" in out.headers["location"]  # at the provider too
        after = await browser.get(f"{portal}/mijn/toestemmingen")
        assert after.status_code == 303 and after.headers["location"] == "/"


async def test_a_login_at_level_midden_is_refused_with_an_explanation(portal: str) -> None:
    async with httpx.AsyncClient() as browser:
        refused = await log_in(browser, portal, BSN, level="midden")
        assert refused.status_code == 403 and "DigiD app" in refused.text
        assert (await browser.get(f"{portal}/mijn/toestemmingen")).status_code == 303  # not logged in


async def test_a_woman_without_data_sees_only_that_there_is_none(system: Clients, tokens: Tokens, portal: str) -> None:
    await record_consent(system, tokens, types=["jgz"])  # someone else's
    _, other_bsn = await consented_patient(system, tokens, types=["jgz"])
    async with httpx.AsyncClient() as browser:
        await log_in(browser, portal, "123456782")
        page = await browser.get(f"{portal}/mijn/toestemmingen")
        assert "geen gegevens over u" in page.text and "Intrekken" not in page.text
        assert BSN not in page.text and other_bsn not in page.text
        meldingen = await browser.get(f"{portal}/mijn/meldingen")
        assert "geen melding" in meldingen.text


async def test_a_callback_without_her_login_state_is_refused(portal: str) -> None:
    """A forged or replayed return from the provider (no state of hers in this session) logs no one in."""
    async with httpx.AsyncClient() as browser:
        forged = await browser.get(f"{portal}/auth/callback", params={"code": "stolen", "state": "guessed"})
        assert forged.status_code == 400 and "niet gelukt" in forged.text
        assert (await browser.get(f"{portal}/mijn")).status_code == 303
