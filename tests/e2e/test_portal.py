"""Her own view in a real browser: headless Chromium (Playwright) through the embedded OpenID Connect provider.

She logs in, sees her two consents and the melding with its recipient and the access log, downloads her copy,
withdraws one consent — and the JGZ's queue receives the retraction; a second woman sees nothing of the first's;
a login at level *midden* is refused. axe-core finds no violation on any page; each page is saved as a
screenshot under var/screenshots/portal/ (git-ignored).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from tests.e2e.flow import (
    BSN,
    RecipientQueue,
    body_of,
    eventually,
    melding_body,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    record_consent,
    send,
    sender,
)
from tests.support import Tokens

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "portal"
SECOND_WOMAN = "123456782"

Clients = dict[str, httpx.AsyncClient]


class Pages:
    """Every page she sees: checked by axe-core (no violation allowed) and saved as a screenshot."""

    def __init__(self, screenshots: Path = SCREENSHOTS) -> None:
        from axe_playwright_python.async_playwright import Axe

        self.axe = Axe()
        self.checked: list[str] = []
        self.screenshots = screenshots
        screenshots.mkdir(parents=True, exist_ok=True)

    async def check(self, page: Any, name: str) -> None:
        results = await self.axe.run(page)
        violations = results.response["violations"]
        assert not violations, f"{name}: axe-core found {[(v['id'], v['help']) for v in violations]}"
        await page.screenshot(path=str(self.screenshots / f"{len(self.checked) + 1:02d}-{name}.png"), full_page=True)
        self.checked.append(name)


async def log_in(page: Any, portal: str, bsn: str, level: str, pages: Pages | None = None) -> None:
    await page.goto(portal)
    if pages:
        await pages.check(page, "start")
    await page.get_by_role("link", name="Inloggen met DigiD").click()
    await page.get_by_label("Burgerservicenummer").fill(bsn)
    await page.get_by_label("Niveau").select_option(level)
    await page.get_by_role("button", name="Inloggen").click()
    await page.wait_for_load_state()


async def _her_data(system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel) -> tuple[str, RecipientQueue]:
    """Two consents for her (JGZ; wijkteam) and a melding under the first, received and read by the JGZ."""
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"], name="GGD Amsterdam JGZ")
    for_jgz = await record_consent(system, tokens, types=["jgz"], risk_domains=["verslaving", "financien-schulden"])
    await record_consent(system, tokens, types=["wijkteam"])
    sent = await send(system, tokens, melding_body(for_jgz, recipient_types=["jgz"]))
    assert sent.status_code == 202, sent.text
    queue = RecipientQueue(amqp, jgz)
    delivered = body_of(await queue.next())
    read = await system["routing"].get(f"/v1/deliveries/{delivered['delivery_id']}", headers=recipient(tokens, jgz))
    assert read.status_code == 200, read.text

    async def routed() -> bool:
        status = await system["melding"].get(f"/v1/meldingen/{sent.json()['id']}", headers=sender(tokens))
        return bool(status.json()["deliveries"])

    await eventually(routed)
    return for_jgz, queue


async def test_she_sees_what_happened_downloads_it_withdraws_and_the_jgz_hears_of_it(
    system: Clients,
    tokens: Tokens,
    amqp: aio_pika.abc.AbstractChannel,
    portal: str,
    chromium_path: str,
    tmp_path: Path,
) -> None:
    from playwright.async_api import async_playwright

    for_jgz, queue = await _her_data(system, tokens, amqp)
    pages = Pages()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(accept_downloads=True, locale="nl-NL")
            page = await context.new_page()
            await log_in(page, portal, BSN, "substantieel", pages)
            assert page.url == f"{portal}/mijn"
            await pages.check(page, "mijn")
            cookies = {c["name"]: c for c in await context.cookies(portal)}
            assert cookies["kansrijk_sessie"]["httpOnly"] and cookies["kansrijk_sessie"]["sameSite"] == "Lax"

            await page.get_by_role("link", name="Mijn toestemmingen").first.click()
            assert await page.get_by_role("heading", name="Toestemming van", exact=False).count() == 2
            assert BSN not in await page.content()
            await pages.check(page, "toestemmingen")

            await page.get_by_role("link", name="Mijn meldingen").first.click()
            melding = page.get_by_role("region", name="Melding van", exact=False)
            assert await melding.count() == 1
            assert "GGD Amsterdam JGZ" in await melding.inner_text()
            assert "verslaving" in await melding.inner_text()
            await pages.check(page, "meldingen")

            await page.get_by_role("link", name="Wie heeft mijn gegevens gezien").first.click()
            log = await page.get_by_role("table").inner_text()
            assert "GGD Amsterdam JGZ" in log and "Verloskundige (organisatienummer" in log
            assert for_jgz not in await page.content()  # no internal ids
            await pages.check(page, "inzage")

            async with page.expect_download() as download_info:
                await page.get_by_role("link", name="Mijn gegevens downloaden").first.click()
            download = await download_info.value
            await download.save_as(tmp_path / "copy.json")
            copy = json.loads((tmp_path / "copy.json").read_text())
            assert len(copy["toestemmingen"]) == 2 and len(copy["meldingen"]) == 1 and copy["inzage"]["records"]

            # She withdraws the consent the melding went out under: confirmation, POST, receipt.
            await page.get_by_role("link", name="Mijn toestemmingen").first.click()
            jgz_consent = page.get_by_role("region").filter(has_text="jeugdgezondheidszorg (JGZ)")
            await jgz_consent.get_by_role("link", name="Intrekken").click()
            await pages.check(page, "intrekken")
            await page.get_by_role("button", name="Ja, trek mijn toestemming in").click()
            await page.wait_for_load_state()
            assert "door uzelf" in await page.get_by_role("status").inner_text()
            await pages.check(page, "ingetrokken")
            retraction = await queue.next()
            assert retraction.type == "melding.retracted" and body_of(retraction)["reason"] == "consent-withdrawn"

            await page.get_by_role("link", name="Uitloggen").first.click()
            await pages.check(page, "uitloggen")
            await page.get_by_role("button", name="Uitloggen").click()
            await page.wait_for_load_state()
            await _confirm_at_provider(page)
            assert page.url == f"{portal}/uitgelogd"
            await pages.check(page, "uitgelogd")
            await page.goto(f"{portal}/mijn/toestemmingen")
            assert page.url == f"{portal}/"  # the session is gone
        finally:
            await browser.close()
    assert len(pages.checked) >= 9


async def _confirm_at_provider(page: Any) -> None:
    """RP-initiated logout ends the session at the provider too: the development provider asks to confirm."""
    if "/oauth2/end_session" in page.url:
        await page.locator("form button[type=submit]").first.click()
        await page.wait_for_load_state()


async def test_a_second_woman_sees_nothing_of_the_first_and_midden_is_refused(
    system: Clients, tokens: Tokens, portal: str, chromium_path: str
) -> None:
    from playwright.async_api import async_playwright

    first_consent = await record_consent(system, tokens, types=["jgz"])  # the first woman's
    pages = Pages()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            second = await (await browser.new_context(locale="nl-NL")).new_page()
            await log_in(second, portal, SECOND_WOMAN, "hoog")
            await second.goto(f"{portal}/mijn/toestemmingen")
            assert "Wij hebben geen gegevens over u" in await second.content()
            await pages.check(second, "geen-gegevens")
            for path in ("/mijn/meldingen", "/mijn/inzage"):
                await second.goto(portal + path)
                assert BSN not in await second.content() and first_consent not in await second.content()
            answer = await second.goto(f"{portal}/mijn/toestemmingen/{first_consent}/intrekken")
            assert answer is not None and answer.status == 404
            await pages.check(second, "niet-gevonden")

            weak = await (await browser.new_context(locale="nl-NL")).new_page()
            await log_in(weak, portal, BSN, "midden")
            assert "DigiD app" in await weak.content()
            await pages.check(weak, "niveau-te-laag")
            await weak.goto(f"{portal}/mijn/toestemmingen")
            assert weak.url == f"{portal}/"  # not logged in
        finally:
            await browser.close()
    still = await system["consent"].get(f"/v1/consents/{first_consent}", headers=sender(tokens))
    assert still.json()["status"] == "active"
