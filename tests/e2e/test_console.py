"""The console (/beheer/) in a real browser: headless Chromium (Playwright) through the embedded OpenID Connect
provider, a person picking her roles there.

An operator signs in, sees a returned melding with the gemeente's and organisations' names and the reason, sends it
to another organisation — and that organisation's queue receives it; she edits a route map and the preview
changes; she finds an organisation in the directory. A person without an operator role gets a 403 page that shows
nothing. axe-core finds no violation on any page; each page is saved as a screenshot under
var/screenshots/console/ (git-ignored).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from tests.e2e.flow import BSN, RecipientQueue, body_of
from tests.e2e.portal.test_console_http import returned_melding
from tests.e2e.test_portal import CHROMIUM_ARGS, Pages
from tests.support import Tokens

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "console"

Clients = dict[str, httpx.AsyncClient]


async def sign_in(page: Any, portal: str, roles: list[str], pages: Pages | None = None) -> None:
    await page.goto(f"{portal}/beheer/")
    if pages:
        await pages.check(page, "start")
    await page.get_by_role("link", name="Inloggen met uw organisatie").click()
    await page.get_by_label("Naam").fill("Fatima de Beheerder")
    await page.get_by_label("Organisatienummer").fill("90000011")
    for role in roles:
        await page.get_by_label(role).check()
    await page.get_by_role("button", name="Inloggen").click()
    await page.wait_for_load_state()


async def test_an_operator_sends_a_returned_melding_on_and_edits_a_route_map(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, portal: str, chromium_path: str
) -> None:
    from playwright.async_api import async_playwright

    melding_id, first, second = await returned_melding(system, tokens, amqp)
    pages = Pages(SCREENSHOTS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(locale="nl-NL")).new_page()
            await sign_in(page, portal, ["beheerder"], pages)
            assert page.url == f"{portal}/beheer/"
            await pages.check(page, "beheer")

            await page.get_by_role("link", name="Wachtende meldingen").first.click()
            row = page.get_by_role("row").filter(has_text=melding_id)
            text = await row.inner_text()
            assert "Amsterdam (GM0363)" in text and f"Teruggestuurd door GGD Amsterdam JGZ {first}" in text
            assert "niet de juiste ontvanger" in text
            assert BSN not in await page.content() and "Sanne" not in await page.content()
            await pages.check(page, "wachtend")

            await row.get_by_role("link", name="Versturen naar een organisatie").click()
            assert await page.get_by_label(f"GGD Amsterdam JGZ {first}", exact=False).count() == 0
            await page.get_by_label(f"JGZ Zuid {second}", exact=False).check()
            await pages.check(page, "versturen")
            await page.get_by_role("button", name="Versturen").click()
            await page.wait_for_load_state()
            assert f"verstuurd naar JGZ Zuid {second}" in await page.get_by_role("status").inner_text()
            await pages.check(page, "verstuurd")
            assert body_of(await RecipientQueue(amqp, second).next())["melding_id"] == melding_id

            await page.get_by_role("link", name="Routekaarten").first.click()
            await pages.check(page, "routekaarten")
            await page.get_by_role("link", name="Amsterdam").click()
            await page.get_by_label("Postcode").fill("1011 AB")
            await page.get_by_label("verslaving").check()
            await page.get_by_role("button", name="Laat zien").click()
            await page.wait_for_load_state()
            before = await page.get_by_role("status").inner_text()
            assert f"JGZ Zuid {second}" not in before and "GGD Amsterdam JGZ" in before
            await pages.check(page, "routekaart")

            await page.get_by_role("link", name="Nieuwe versie maken").click()
            await page.get_by_label("Geldt vanaf").fill("2026-01-01")
            jgz = page.get_by_role("group", name="jeugdgezondheidszorg (JGZ)", exact=True)
            await jgz.get_by_label("De toelichting gaat mee").uncheck()
            await jgz.get_by_label("verslaving").uncheck()
            await page.get_by_label("Gewoon").fill("10")
            await pages.check(page, "routekaart-nieuw")
            await page.get_by_role("button", name="Versie opslaan").click()
            await page.wait_for_load_state()
            assert "Deze versie geldt sinds 2026-01-01" in await page.content()
            await page.get_by_label("Postcode").fill("1011 AB")
            await page.get_by_label("verslaving").check()
            await page.get_by_role("button", name="Laat zien").click()
            await page.wait_for_load_state()
            after = await page.get_by_role("status").inner_text()
            assert after != before and "Niets (volgens de routekaart)" in after
            await pages.check(page, "routekaart-voorbeeld")

            await page.get_by_role("link", name="Organisaties").first.click()
            await page.get_by_label("Zoek op naam", exact=False).fill("Zuid")
            await page.get_by_role("button", name="Zoeken").click()
            await page.wait_for_load_state()
            assert await page.get_by_role("row").filter(has_text=f"JGZ Zuid {second}").count() == 1
            await pages.check(page, "organisaties")
        finally:
            await browser.close()
    assert len(pages.checked) >= 10


async def test_a_person_without_an_operator_role_sees_no_operator_page(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, portal: str, chromium_path: str
) -> None:
    from playwright.async_api import async_playwright

    melding_id, first, _ = await returned_melding(system, tokens, amqp)
    pages = Pages(SCREENSHOTS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            nobody = await (await browser.new_context(locale="nl-NL")).new_page()
            await sign_in(nobody, portal, [])
            assert "Geen toegang" in await nobody.content()
            await pages.check(nobody, "geen-rol")

            coordinator = await (await browser.new_context(locale="nl-NL")).new_page()
            await sign_in(coordinator, portal, ["coordinator"])
            assert await coordinator.get_by_role("link", name="Wachtende meldingen").count() == 0
            for path in (
                "/beheer/wachtend",
                "/beheer/routekaarten",
                "/beheer/routekaarten/GM0363",
                "/beheer/organisaties",
            ):
                answer = await coordinator.goto(portal + path)
                assert answer is not None and answer.status == 403
                content = await coordinator.content()
                assert melding_id not in content and first not in content and "Amsterdam" not in content
            await pages.check(coordinator, "geen-toegang")

            officer = await (await browser.new_context(locale="nl-NL")).new_page()
            await sign_in(officer, portal, ["privacy-officer"])
            await officer.get_by_role("link", name="Toegang").first.click()
            await officer.get_by_label("Burgerservicenummer van de cliënte").fill(BSN)
            await officer.get_by_role("button", name="Zoeken").click()
            await officer.wait_for_load_state()
            assert await officer.get_by_role("table").count() == 1 and BSN not in await officer.content()
            await pages.check(officer, "toegang")
        finally:
            await browser.close()


async def test_a_coordinator_picks_a_gemeente_and_a_quarter_sees_the_charts_and_downloads_the_csv(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, portal: str, chromium_path: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    await returned_melding(system, tokens, amqp)
    today = date.today()
    pages = Pages(SCREENSHOTS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(locale="nl-NL", accept_downloads=True)).new_page()
            await sign_in(page, portal, ["coordinator"])
            await page.get_by_role("link", name="Cijfers").first.click()
            await page.get_by_role("textbox", name="Gemeente", exact=False).fill("GM0363")
            quarter_start = f"{today.year}-{(today.month - 1) // 3 * 3 + 1:02d}-01"
            await page.get_by_role("textbox", name="Van (JJJJ-MM-DD)").fill(quarter_start)
            await page.get_by_role("textbox", name="Tot en met (JJJJ-MM-DD)").fill(today.isoformat())
            await page.get_by_role("combobox", name="Per").select_option("kwartaal")
            await page.get_by_role("button", name="Toon de cijfers").click()
            await page.wait_for_load_state()
            assert "Amsterdam" in await page.get_by_role("heading", level=2).inner_text()
            charts = page.get_by_role("img", name="Grafiek:", exact=False)
            assert await charts.count() == 5  # the report's charts for a gemeente (no chart by gemeente)
            for n in range(await charts.count()):
                # drawn: the image loads under the page's CSP and decodes (a blocked or broken one does not)
                assert await charts.nth(n).evaluate("img => img.decode().then(() => img.naturalWidth > 0, () => false)")
            assert "(loopt nog)" in await page.get_by_role("table").inner_text()
            await pages.check(page, "cijfers")
            async with page.expect_download() as download_info:
                await page.get_by_role("link", name="Cijfers downloaden (CSV)").click()
            download = await download_info.value
            await download.save_as(tmp_path / "cijfers.csv")
            assert (tmp_path / "cijfers.csv").read_text().startswith("periode,onderdeel,sleutel,waarde")
            await page.emulate_media(media="print")
            await page.screenshot(path=str(SCREENSHOTS / "cijfers-afdruk.png"), full_page=True)
        finally:
            await browser.close()


async def test_a_coordinator_picks_a_ggd_region_and_sees_its_charts_by_gemeente(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, portal: str, chromium_path: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    await returned_melding(system, tokens, amqp)  # a melding in Amsterdam, of GGD Amsterdam
    today = date.today()
    pages = Pages(SCREENSHOTS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(locale="nl-NL", accept_downloads=True)).new_page()
            await sign_in(page, portal, ["coordinator"])
            await page.get_by_role("link", name="Cijfers").first.click()
            picker = page.get_by_role("combobox", name="Of een GGD-regio")
            assert "GGD Amsterdam" in await picker.inner_text() and "GGD Fryslân" in await picker.inner_text()
            await picker.select_option(label="GGD Amsterdam")
            await page.get_by_role("textbox", name="Van (JJJJ-MM-DD)").fill(f"{today.year}-01-01")
            await page.get_by_role("textbox", name="Tot en met (JJJJ-MM-DD)").fill(today.isoformat())
            await page.get_by_role("combobox", name="Per").select_option("jaar")
            await page.get_by_role("button", name="Toon de cijfers").click()
            await page.wait_for_load_state()
            assert "GGD Amsterdam" in await page.get_by_role("heading", level=2).inner_text()
            assert await picker.input_value() == "GG3406"  # the form keeps what she picked
            charts = page.get_by_role("img", name="Grafiek:", exact=False)
            assert await charts.count() == 6  # the report's charts, and the region's by gemeente
            for n in range(await charts.count()):
                assert await charts.nth(n).evaluate("img => img.decode().then(() => img.naturalWidth > 0, () => false)")
            table = await page.get_by_role("table").inner_text()
            assert "Amsterdam (GM0363)" in table and "Ouder-Amstel (GM0437)" in table
            assert "Zonder gemeente" not in table and "Rotterdam" not in table
            await pages.check(page, "cijfers-regio")
            async with page.expect_download() as download_info:
                await page.get_by_role("link", name="Cijfers downloaden (CSV)").click()
            await (await download_info.value).save_as(tmp_path / "regio.csv")
            lines = (tmp_path / "regio.csv").read_text().splitlines()
            assert any(line.startswith(f"{today.year},by_gemeente,GM0437,") for line in lines)

            # A gemeente and a region at once is one too many: said in words, nothing asked of the service.
            await page.get_by_role("textbox", name="Gemeente", exact=False).fill("GM0363")
            await page.get_by_role("button", name="Toon de cijfers").click()
            await page.wait_for_load_state()
            assert "niet allebei" in await page.get_by_role("alert").inner_text()
            await pages.check(page, "cijfers-regio-en-gemeente")
        finally:
            await browser.close()
    assert len(pages.checked) == 2
