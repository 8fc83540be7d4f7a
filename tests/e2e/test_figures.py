"""Programme figures end to end (contract v1.1, "Programme figures"): meldingen made through the API —
answered, withdrawn (their personal data removed at once), cancelled — counted per gemeente and for the
country, with every small number suppressed, for a token with `figures:read` only."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from shared.clock import today_nl
from tests.e2e.flow import (
    RecipientQueue,
    admin,
    body_of,
    consented_patient,
    eventually,
    melding_body,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    sender,
)
from tests.e2e.test_cli import cli_env, run_cli
from tests.support import RunEnvironment, Tokens

Clients = dict[str, httpx.AsyncClient]
GEMEENTE, NAME, POSTCODES = "GM1680", "Aa en Hunze", ("9450", "9469")  # no other test routes here
REGION = "GG0706"  # GGD Drenthe


def coordinator(tokens: Tokens) -> dict[str, str]:
    return tokens.bearer(org_id="coalitie-drenthe", org_type="operator", scopes="figures:read")


def huisarts(tokens: Tokens, org_id: str) -> dict[str, str]:
    return tokens.bearer(org_id=org_id, org_type="huisarts", scopes="consent:write melding:write melding:read")


def _body(consent_id: str, bsn: str, domains: list[str]) -> dict[str, Any]:
    body = melding_body(consent_id, bsn, recipient_types=["jgz"], risk_domains=domains)
    body["patient"]["address"]["postcode"] = "9451AB"
    return body


async def _send(system: Clients, headers: dict[str, str], body: dict[str, Any]) -> str:
    sent = await system["melding"].post("/v1/meldingen", headers=headers, json=body)
    assert sent.status_code == 202, sent.text
    return str(sent.json()["id"])


async def _huisarts_melding(system: Clients, tokens: Tokens, org_id: str, bsn: str) -> tuple[str, str]:
    consent = await system["consent"].post(
        "/v1/consents",
        headers=huisarts(tokens, org_id),
        json={"patient": {"bsn": bsn}, "recipient_types": ["jgz"], "method": "verbal", "given_at": str(today_nl())},
    )
    assert consent.status_code == 201, consent.text
    consent_id = consent.json()["id"]
    return consent_id, await _send(system, huisarts(tokens, org_id), _body(consent_id, bsn, ["psychiatrie"]))


async def _figures(system: Clients, tokens: Tokens, **params: str) -> httpx.Response:
    today = str(today_nl())
    return await system["melding"].get(
        "/v1/figures", headers=coordinator(tokens), params={"from": today, "to": today, "interval": "year", **params}
    )


async def _programme(system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel) -> dict[str, Any]:
    """15 meldingen in one gemeente, answered, withdrawn and cancelled as below; the year's figures once every
    event has been handled."""
    await put_gemeente(system, tokens, GEMEENTE, NAME, [POSTCODES])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=[GEMEENTE])
    route_map = {"effective_from": "2026-01-01", "recipients": {"jgz": {"risk_domains": "all"}}}
    put = await system["routing"].put(f"/v1/gemeenten/{GEMEENTE}/route-map", headers=admin(tokens), json=route_map)
    assert put.status_code == 201, put.text

    verloskundige, practice = new_org_id(), new_org_id()
    ours = []  # the verloskundige's meldingen
    for _ in range(12):
        consent_id, bsn = await consented_patient(system, tokens, types=["jgz"], org_id=verloskundige)
        body = _body(consent_id, bsn, ["verslaving", "financien-schulden"])
        ours.append(await _send(system, sender(tokens, verloskundige), body))
    huisarts_consents = []
    for _ in range(3):
        _, bsn = await consented_patient(system, tokens, types=["jgz"])  # a fresh BSN
        huisarts_consents.append((await _huisarts_melding(system, tokens, practice, bsn))[0])

    queue = RecipientQueue(amqp, jgz)
    delivered = {body_of(m)["melding_id"]: str(m.message_id) for m in [await queue.next() for _ in range(15)]}
    for n, melding_id in enumerate(ours[:11]):
        path = f"/v1/deliveries/{delivered[melding_id]}/status"
        contact = await system["routing"].post(path, headers=recipient(tokens, jgz), json={"status": "contact_made"})
        assert contact.status_code == 200, contact.text
        if n < 10:
            closed = {"status": "closed", "outcome": "phb-done"}
            assert (await system["routing"].post(path, headers=recipient(tokens, jgz), json=closed)).status_code == 200
    withdrawn = await system["consent"].post(
        f"/v1/consents/{huisarts_consents[0]}/withdraw", headers=huisarts(tokens, practice)
    )
    assert withdrawn.status_code == 200, withdrawn.text
    cancelled = await system["melding"].post(
        f"/v1/meldingen/{ours[11]}/cancel", headers=sender(tokens, verloskundige), json={"reason": "sent-in-error"}
    )
    assert cancelled.status_code == 200, cancelled.text

    seen: list[dict[str, Any]] = []

    async def settled() -> bool:  # every answer, the withdrawal and the cancellation have reached the melding service
        response = await _figures(system, tokens, gemeente=GEMEENTE.lower())
        assert response.status_code == 200, response.text
        seen[:] = response.json()["periods"]
        return seen[0]["outcomes"]["phb-done"] == 10 and seen[0]["contact_within_deadline"] is not None

    try:
        await eventually(settled, timeout=30)
    except AssertionError:
        raise AssertionError(f"the figures never settled: {seen}") from None
    return seen[0]


async def test_figures_count_what_came_of_the_meldingen_and_hide_every_small_number(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    period = await _programme(system, tokens, amqp)
    assert period["period"] == str(today_nl().year) and period["meldingen"] == 15
    # 12 verloskundige and 3 huisarts: the 12 would give the 3 away (15 - 12).
    assert set(period["by_sender_type"]) == {"huisarts", "verloskundige", "gynaecoloog", "volwassenen-ggz",
                                             "verslavingszorg"}  # fmt: skip
    assert set(period["by_sender_type"].values()) == {None}
    # delivered 13, withdrawn 1, cancelled 1: the 13 would give the 2 away.
    assert set(period["by_status"].values()) == {None}
    assert period["by_risk_domain"]["verslaving"] == 12 and period["by_risk_domain"]["financien-schulden"] == 12
    assert period["by_risk_domain"]["psychiatrie"] is None  # 3
    assert period["by_recipient_type"] == {"jgz": 15, "wijkteam": 0}  # a true 0 points to nobody
    assert period["outcomes"]["phb-done"] == 10 and period["outcomes"]["declined"] == 0
    assert period["returned"] == 0
    assert period["contact_within_deadline"] == 1.0  # 11 of the 11 whose deadline was met or passed
    assert period["days_to_contact"] == {"p50": 0.0, "p90": 0.0}  # contact the day of the melding
    assert period["by_gemeente"] is None

    country = await _figures(system, tokens)
    assert country.status_code == 200 and country.json()["gemeente"] is None
    assert country.json()["gemeente_names"] == {GEMEENTE: NAME}
    (national,) = country.json()["periods"]
    assert national["by_gemeente"] == {GEMEENTE: 15} and national["meldingen"] == 15
    body = (await _figures(system, tokens, gemeente=GEMEENTE)).json()
    assert body["gemeente"] == {"code": GEMEENTE, "name": NAME} and body["suppression_threshold"] == 10
    assert body["from"] == f"{today_nl().year}-01-01" and body["to"] == f"{today_nl().year}-12-31"

    # Its GGD region: the same table's region level, every gemeente of it listed by name.
    region = await _figures(system, tokens, region=REGION.lower())
    assert region.status_code == 200, region.text
    assert region.json()["region"] == {"code": REGION, "name": "GGD Drenthe"} and region.json()["gemeente"] is None
    (regional,) = region.json()["periods"]
    assert regional["meldingen"] == 15 and regional["by_gemeente"][GEMEENTE] == 15
    assert len(regional["by_gemeente"]) == 12 and set(regional["by_gemeente"].values()) == {0, 15}
    assert regional["without_gemeente"] is None and region.json()["gemeente_names"]["GM0106"] == "Assen"
    listed = await system["melding"].get("/v1/figures/regions", headers=coordinator(tokens))
    assert listed.status_code == 200 and len(listed.json()) == 25
    assert {"code": REGION, "name": "GGD Drenthe"}.items() <= next(
        r for r in listed.json() if r["code"] == REGION
    ).items()

    audit = await system["melding"].get("/v1/audit", headers=admin(tokens), params={"action": "read"})
    read = {r["resource_id"] for r in audit.json()["items"] if r["resource_type"] == "figures"}
    assert {GEMEENTE, REGION} <= read


async def test_figures_need_their_scope_and_sound_parameters(system: Clients, tokens: Tokens) -> None:
    today = str(today_nl())
    no_scope = await system["melding"].get("/v1/figures", headers=sender(tokens), params={"from": today, "to": today})
    assert no_scope.status_code == 403 and no_scope.json()["type"].endswith("forbidden")
    for params in (
        {"from": today},  # no `to`
        {"from": today, "to": "2020-01-01"},  # backwards
        {"from": "2020-01-01", "to": "2031-01-01"},  # more than 120 months
        {"from": "0001-01-01", "to": today, "interval": "year"},
        {"from": today, "to": today, "gemeente": "GM12"},
        {"from": today, "to": today, "gemeente": "GM0363\x00"},
        {"from": today, "to": today, "interval": "week"},
        {"from": "1700000000", "to": today},
        {"from": today, "to": today, "region": "GG12"},
        {"from": today, "to": today, "region": "GG9999"},  # no such region
        {"from": today, "to": today, "gemeente": "GM0363", "region": "GG3406"},  # one or the other
    ):
        response = await system["melding"].get("/v1/figures", headers=coordinator(tokens), params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    unknown = await system["melding"].get(
        "/v1/figures", headers=coordinator(tokens), params={"from": today, "to": today, "region": "GG9999"}
    )
    assert "GG9999 is not a GGD region" in unknown.json()["detail"]
    regions = await system["melding"].get("/v1/figures/regions", headers=sender(tokens))
    assert regions.status_code == 403


# --- the report a coordinator opens ------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PERSONAL = ("Sanne", "de Vries", "methadon", "9451", "1998-03-14", "0612345678", "M. Jansen")


async def _in_chromium(page: Path, screenshot: Path) -> tuple[list[str], list[Any]]:
    """The page opened in headless Chromium: every URL it asked for, and each chart as painted (PIL images).
    A screenshot of the whole page is left in `screenshot`."""
    from PIL import Image
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            tab = await browser.new_page(viewport={"width": 1200, "height": 900})
            asked: list[str] = []
            tab.on("request", lambda request: asked.append(request.url))
            await tab.goto(page.as_uri())
            await tab.screenshot(path=screenshot, full_page=True)
            charts = tab.locator(".chart svg")
            shots = [await charts.nth(i).screenshot() for i in range(await charts.count())]
        finally:
            await browser.close()
    return asked, [Image.open(io.BytesIO(shot)).convert("RGB") for shot in shots]


def _share_near(image: Any, colour: tuple[int, int, int], tolerance: int = 16) -> float:
    """The share of the image's pixels within `tolerance` of `colour` (per channel)."""
    pixels = list(image.get_flattened_data())
    near = sum(1 for pixel in pixels if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True)))
    return near / len(pixels)


def _share_bluish(image: Any) -> float:
    """The share of pixels clearly blue (the heat map's cells)."""
    pixels = list(image.get_flattened_data())
    return sum(1 for r, g, b in pixels if b - r > 60) / len(pixels)


def _painted(image: Any) -> float:
    """The share of pixels that are not white."""
    pixels = list(image.get_flattened_data())
    return sum(1 for pixel in pixels if min(pixel) < 235) / len(pixels)


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="needs Chromium (apt install chromium; .ci/run does)"
)
async def test_the_report_is_one_page_in_dutch_with_charts_that_loads_nothing_and_names_no_one(
    system: Clients,
    tokens: Tokens,
    amqp: aio_pika.abc.AbstractChannel,
    environment: RunEnvironment,
    stack: dict[str, str],
    stack_databases: dict[str, str],
    tmp_path: Path,
) -> None:
    assert CHROMIUM is not None, "CI installs Chromium (.ci/run)"
    await _programme(system, tokens, amqp)
    today = str(today_nl())
    env = cli_env(environment, KANSRIJK_MELDING_DATABASE_URL=stack_databases["melding"])
    gemeente, country = tmp_path / "gemeente.html", tmp_path / "nederland.html"
    period = ("--from", today, "--to", today, "--interval", "year")
    made = await run_cli("report", "--gemeente", GEMEENTE, *period, "--out", str(gemeente), env=env)
    assert made.returncode == 0, made.stderr
    token = coordinator(tokens)["Authorization"].removeprefix("Bearer ")
    asked = await run_cli(
        "report", *period, "--url", stack["melding"], "--token", token, "--out", str(country), env=env
    )
    assert asked.returncode == 0, asked.stderr
    regional = tmp_path / "regio.html"
    made = await run_cli("report", "--region", REGION, *period, "--out", str(regional), env=env)
    assert made.returncode == 0, made.stderr
    asked = await run_cli(
        "report", "--region", REGION, *period, "--url", stack["melding"], "--token", token, "--out",
        str(tmp_path / "regio-url.html"), env=env,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    refused = await run_cli("report", *period, "--gemeente", "GM12", "--out", str(tmp_path / "x.html"), env=env)
    assert refused.returncode == 2 and "GM" in refused.stderr
    both = await run_cli(
        "report", *period, "--gemeente", GEMEENTE, "--region", REGION, "--out", str(tmp_path / "x.html"), env=env
    )
    assert both.returncode == 2 and "not both" in both.stderr
    unknown = await run_cli("report", *period, "--region", "GG9999", "--out", str(tmp_path / "x.html"), env=env)
    assert unknown.returncode == 2 and "GG9999" in unknown.stderr
    unmigrated = {**env, "KANSRIJK_MELDING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"}
    told = await run_cli("report", *period, "--out", str(tmp_path / "x.html"), env=unmigrated)
    assert told.returncode == 1 and "kansrijk migrate melding" in told.stderr and "Traceback" not in told.stderr

    for page, charts in ((gemeente, 5), (country, 6)):
        text = page.read_text(encoding="utf-8")
        assert '<html lang="nl">' in text and "Bron: CBS" in text and "Kleine aantallen zijn niet getoond" in text
        assert not any(value in text for value in PERSONAL) and not re.search(r"\b\d{9}\b", text)  # no BSN
        # Nothing to fetch: no scripts, no linked files, no URL but the SVG namespaces.
        assert "<script" not in text and "<link" not in text and "@import" not in text
        assert set(re.findall(r"https?://[^\s\"')<]+", text)) <= {"http://www.w3.org/2000/svg",
                                                                   "http://www.w3.org/1999/xlink"}  # fmt: skip
        fetched, painted = await _in_chromium(page, tmp_path / f"{page.stem}.png")
        assert fetched == [page.as_uri()], "the page loaded something besides itself"
        assert len(painted) == charts and all(_painted(chart) > 0.04 for chart in painted), "a chart is blank"
        # The contact chart's green bar (100 %) and the risk domains' heat map (two cells of 12) are painted.
        assert _share_near(painted[3], (0x2A, 0x9D, 0x55)) > 0.05
        assert _share_bluish(painted[1]) > 0.05
    assert "Aa en Hunze (GM1680)" in country.read_text(encoding="utf-8")
    text = regional.read_text(encoding="utf-8")
    assert "meldingen in GGD Drenthe (GG0706)" in text and "Aa en Hunze (GM1680)" in text and "Assen (GM0106)" in text
    assert "Zonder gemeente" not in text
