"""The console (/beheer/) over plain HTTP (no browser): a person of an organisation signs in through the embedded
provider with roles; without an operator role she gets a 403 page that shows nothing; an operator sees a returned
melding with names and the reason and sends it to another organisation, whose queue receives it. The browser test
(tests/e2e/test_console.py) walks the same way with Chromium."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aio_pika
import httpx

from services.routing.api.schemas import UnroutableList
from tests.e2e.flow import (
    BSN,
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
    record_consent,
    send,
)
from tests.e2e.portal.test_portal_http import csrf_of
from tests.support import Tokens

Clients = dict[str, httpx.AsyncClient]


async def sign_in(browser: httpx.AsyncClient, portal: str, roles: list[str], org: str = "90000011") -> httpx.Response:
    """What a person of an organisation does: start at the console, fill in the provider's form, come back."""
    to_provider = await browser.get(f"{portal}/beheer/inloggen")
    assert to_provider.status_code in (302, 303), to_provider.text
    authorize = to_provider.headers["location"]
    asked = parse_qs(urlsplit(authorize).query)
    assert asked["client_id"] == ["kansrijk-console"] and asked["code_challenge_method"] == ["S256"]
    form = await browser.get(authorize)
    assert form.status_code == 200 and 'name="role"' in form.text
    back = await browser.post(authorize, data={"name": "Fatima de Beheerder", "org": org, "role": roles})
    assert back.status_code in (302, 303), back.text
    return await browser.get(back.headers["location"])


async def returned_melding(system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel) -> tuple[str, str, str]:
    """A melding the JGZ that received it sent back as the wrong recipient; another JGZ serves another part of
    the gemeente."""
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    first = new_org_id()
    await put_organisation(system, tokens, first, "jgz", ranges=[("1011", "1050")], name=f"GGD Amsterdam JGZ {first}")
    consent_id = await record_consent(system, tokens, types=["jgz"])
    sent = await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))
    assert sent.status_code == 202, sent.text
    delivery_id = (await RecipientQueue(amqp, first).next()).message_id
    second = new_org_id()
    await put_organisation(system, tokens, second, "jgz", ranges=[("1051", "1109")], name=f"JGZ Zuid {second}")
    returned = await system["routing"].post(
        f"/v1/deliveries/{delivery_id}/status",
        headers=recipient(tokens, first),
        json={"status": "returned", "reason": "wrong-recipient"},
    )
    assert returned.status_code == 200, returned.text
    return str(sent.json()["id"]), first, second


async def test_without_an_operator_role_no_operator_page_and_nothing_leaked(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, portal: str
) -> None:
    melding_id, first, _ = await returned_melding(system, tokens, amqp)
    async with httpx.AsyncClient() as nobody:
        refused = await sign_in(nobody, portal, roles=[])
        assert refused.status_code == 403 and "Geen toegang" in refused.text
        cookie = refused.headers.get("set-cookie", "")
        assert "kansrijk_sessie" not in cookie or "Max-Age=0" in cookie  # no session kept for her
        page = await nobody.get(f"{portal}/beheer/wachtend")
        assert page.status_code == 303 and page.headers["location"] == "/beheer/"
    async with httpx.AsyncClient() as coordinator:
        landed = await sign_in(coordinator, portal, roles=["coordinator"])
        assert landed.status_code == 303 and landed.headers["location"] == "/beheer/"
        home = await coordinator.get(f"{portal}/beheer/")
        assert "Wachtende meldingen" not in home.text
        for path in ("/beheer/wachtend", f"/beheer/wachtend/{melding_id}/versturen/jgz"):
            page = await coordinator.get(portal + path)
            assert page.status_code == 403 and "Geen toegang" in page.text
            assert melding_id not in page.text and first not in page.text and "Amsterdam" not in page.text
        csrf = csrf_of((await coordinator.get(f"{portal}/beheer/uitloggen")).text)
        posted = await coordinator.post(
            f"{portal}/beheer/wachtend/{melding_id}/versturen/jgz", data={"csrf": csrf, "org_id": first}
        )
        assert posted.status_code == 403
    still = UnroutableList.model_validate((await system["routing"].get("/v1/unroutable", headers=admin(tokens))).json())
    assert melding_id in {item.melding_id for item in still.items}


async def test_an_operator_sees_a_returned_melding_with_names_and_sends_it_to_another_organisation(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, portal: str
) -> None:
    melding_id, first, second = await returned_melding(system, tokens, amqp)
    async with httpx.AsyncClient() as operator:
        await sign_in(operator, portal, roles=["beheerder"], org="90000011")
        waiting = await operator.get(f"{portal}/beheer/wachtend")
        assert waiting.status_code == 200, waiting.text
        row = re.search(rf"<tr>\s*<td><code>{melding_id}</code>.*?</tr>", waiting.text, re.S)
        assert row, "the returned melding is not listed"
        assert "Amsterdam (GM0363)" in row.group(0)
        assert f"Teruggestuurd door GGD Amsterdam JGZ {first}" in row.group(0)
        assert "niet de juiste ontvanger" in row.group(0)
        assert BSN not in waiting.text
        picker = await operator.get(f"{portal}/beheer/wachtend/{melding_id}/versturen/jgz")
        assert picker.status_code == 200
        assert f'value="{second}"' in picker.text and f'value="{first}"' not in picker.text  # never back to it
        forged = await operator.post(
            f"{portal}/beheer/wachtend/{melding_id}/versturen/jgz", data={"csrf": "x", "org_id": second}
        )
        assert forged.status_code == 403
        not_offered = await operator.post(
            f"{portal}/beheer/wachtend/{melding_id}/versturen/jgz", data={"csrf": csrf_of(picker.text), "org_id": first}
        )
        assert not_offered.status_code == 422 and "Kies een organisatie" in not_offered.text
        sent = await operator.post(
            f"{portal}/beheer/wachtend/{melding_id}/versturen/jgz",
            data={"csrf": csrf_of(picker.text), "org_id": second},
        )
        assert sent.status_code == 200 and f"verstuurd naar JGZ Zuid {second}" in sent.text
    assert body_of(await RecipientQueue(amqp, second).next())["melding_id"] == melding_id
    assert await RecipientQueue(amqp, first).empty()
    # every action is audited with the person as the actor: her sub, her organisation
    audit = await system["routing"].get("/v1/audit", headers=admin(tokens), params={"org_id": "90000011"})
    assert audit.status_code == 200, audit.text
    [rerouted] = [r for r in audit.json()["items"] if r["resource_id"] == melding_id]
    assert rerouted["action"] == "update" and rerouted["resource_type"] == "melding-routing"
    assert rerouted["actor_sub"].startswith("staff-") and rerouted["actor_org_type"] == "operator"


async def test_a_melding_still_waiting_after_the_operators_send_says_why_in_dutch(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, portal: str
) -> None:
    """For JGZ and wijkteam in a gemeente without a wijkteam: sent on to another JGZ, it still waits for a wijkteam,
    and the console says so in Dutch (from the reroute's codes, not its English `reason`)."""
    await put_gemeente(system, tokens, "GM0014", "Groningen", [("9711", "9747")])
    first, second = new_org_id(), new_org_id()
    await put_organisation(system, tokens, first, "jgz", ranges=[("9711", "9720")], name=f"GGD Groningen JGZ {first}")
    consent_id, bsn = await consented_patient(system, tokens, types=["jgz", "wijkteam"])
    body = melding_body(consent_id, bsn)
    body["patient"]["address"] = {"postcode": "9712 AB", "house_number": "3", "city": "Groningen"}
    sent = await send(system, tokens, body)
    assert sent.status_code == 202, sent.text
    melding_id = str(sent.json()["id"])
    delivery_id = (await RecipientQueue(amqp, first).next()).message_id
    await put_organisation(system, tokens, second, "jgz", ranges=[("9721", "9747")], name=f"JGZ Stad {second}")
    returned = await system["routing"].post(
        f"/v1/deliveries/{delivery_id}/status",
        headers=recipient(tokens, first),
        json={"status": "returned", "reason": "wrong-recipient"},
    )
    assert returned.status_code == 200, returned.text
    async with httpx.AsyncClient() as operator:
        await sign_in(operator, portal, roles=["beheerder"])
        picker = await operator.get(f"{portal}/beheer/wachtend/{melding_id}/versturen/jgz")
        assert picker.status_code == 200, picker.text
        answer = await operator.post(
            f"{portal}/beheer/wachtend/{melding_id}/versturen/jgz",
            data={"csrf": csrf_of(picker.text), "org_id": second},
        )
    assert answer.status_code == 200, answer.text
    assert "De melding wacht nog." in answer.text
    assert (
        "Voor wijkteam: er is geen actieve organisatie van dit type die voor gemeente Groningen werkt." in answer.text
    )
    assert "organisation" not in answer.text and "serves" not in answer.text  # none of the API's English
    assert body_of(await RecipientQueue(amqp, second).next())["melding_id"] == melding_id


async def test_an_operator_edits_a_route_map_with_the_apis_checks_and_the_preview_changes(
    system: Clients, tokens: Tokens, portal: str
) -> None:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    wijkteam = new_org_id()
    await put_organisation(system, tokens, wijkteam, "wijkteam", gemeenten=["GM0363"], name="Wijkteam Centrum")
    async with httpx.AsyncClient() as operator:
        await sign_in(operator, portal, roles=["beheerder"])
        page = await operator.get(f"{portal}/beheer/routekaarten/GM0363")
        assert page.status_code == 200 and "Er is geen routekaart" in page.text
        preview = {"csrf": csrf_of(page.text), "postcode": "1011 AB", "risk_domain": ["verslaving"]}
        before = await operator.post(f"{portal}/beheer/routekaarten/GM0363/voorbeeld", data=preview)
        assert before.status_code == 200 and "Wijkteam Centrum" in before.text
        assert b"1011" not in before.url.raw_path  # the postcode is in the body, not the path (the port may hold it)
        form = await operator.get(f"{portal}/beheer/routekaarten/GM0363/nieuw")
        assert form.status_code == 200
        new_version = {
            "csrf": csrf_of(form.text),
            "effective_from": "2026-01-01",
            "jgz:receives": "1", "jgz:note": "1", "jgz:verslaving": "1",
            "wijkteam:receives": "1", "wijkteam:huisvesting": "1",
            "deadline:regular": "10", "deadline:urgent": "1",
        }  # fmt: skip
        refused = await operator.post(
            f"{portal}/beheer/routekaarten/GM0363/nieuw", data={**new_version, "effective_from": "1 januari"}
        )
        assert refused.status_code == 422 and "niet opgeslagen" in refused.text  # the API's check, on the form
        saved = await operator.post(f"{portal}/beheer/routekaarten/GM0363/nieuw", data=new_version)
        assert saved.status_code == 303 and saved.headers["location"] == "/beheer/routekaarten/GM0363"
        page = await operator.get(f"{portal}/beheer/routekaarten/GM0363")
        assert "Deze versie geldt sinds 2026-01-01" in page.text and "10 dagen" in page.text
        after = await operator.post(f"{portal}/beheer/routekaarten/GM0363/voorbeeld", data=preview)
        assert "Niets (volgens de routekaart)" in after.text  # the wijkteam no longer gets verslaving
    versions = await system["routing"].get("/v1/gemeenten/GM0363/route-map", headers=admin(tokens))
    assert versions.json()["current"]["recipients"]["wijkteam"] == {"risk_domains": ["huisvesting"], "note": False}


async def test_an_operator_finds_an_organisation_and_deactivates_and_activates_it(
    system: Clients, tokens: Tokens, portal: str
) -> None:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"], name="GGD Amsterdam JGZ")
    async with httpx.AsyncClient() as operator:
        await sign_in(operator, portal, roles=["beheerder"])
        found = await operator.get(f"{portal}/beheer/organisaties", params={"q": "amsterdam"})
        assert found.status_code == 200 and "GGD Amsterdam JGZ" in found.text and "Amsterdam (GM0363)" in found.text
        nothing = await operator.get(f"{portal}/beheer/organisaties", params={"q": "wijkteam"})
        assert "Geen organisatie gevonden" in nothing.text
        csrf = csrf_of(found.text)
        forged = await operator.post(f"{portal}/beheer/organisaties/{jgz}/deactiveren", data={"csrf": "x"})
        assert forged.status_code == 403
        off = await operator.post(f"{portal}/beheer/organisaties/{jgz}/deactiveren", data={"csrf": csrf})
        assert off.status_code == 303
        directory = await system["routing"].get(f"/v1/organisations/{jgz}", headers=admin(tokens))
        assert directory.json()["active"] is False
        on = await operator.post(f"{portal}/beheer/organisaties/{jgz}/activeren", data={"csrf": csrf})
        assert on.status_code == 303 and on.headers["location"].endswith("melding=geactiveerd")
        directory = await system["routing"].get(f"/v1/organisations/{jgz}", headers=admin(tokens))
        assert directory.json()["active"] is True and directory.json()["gemeenten"] == ["GM0363"]


async def test_a_coordinator_picks_a_gemeente_and_a_quarter_and_downloads_the_csv_and_the_report(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, portal: str
) -> None:
    await returned_melding(system, tokens, amqp)  # one melding: below the threshold, hidden
    today = date.today()
    quarter = f"{today.year}-{(today.month - 1) // 3 * 3 + 1:02d}-01"
    asked = {"gemeente": "GM0363", "van": quarter, "tot": today.isoformat(), "interval": "kwartaal"}
    async with httpx.AsyncClient() as coordinator:
        await sign_in(coordinator, portal, roles=["coordinator"])
        page = await coordinator.get(f"{portal}/beheer/cijfers", params=asked)
        assert page.status_code == 200, page.text
        assert "Amsterdam" in page.text and "K" in page.text and "loopt nog" in page.text  # this quarter
        assert "Meldingen in de hele periode: <strong>x</strong>" in page.text  # 1 melding: hidden, never "1"
        csv_file = await coordinator.get(f"{portal}/beheer/cijfers.csv", params=asked)
        assert csv_file.status_code == 200 and csv_file.headers["content-type"].startswith("text/csv")
        assert csv_file.text.splitlines()[0] == "periode,onderdeel,sleutel,waarde"
        assert ",meldingen,,x" in csv_file.text
        charts = re.findall(
            r'<img src="(/beheer/cijfers/grafiek/[a-z]+\.svg\?[^"]+)" alt="Grafiek: ([^"]+)"', page.text
        )
        assert [src.split("/")[-1].split(".")[0] for src, _ in charts] == [
            "afzenders", "risicodomeinen", "stand", "contact", "uitkomsten"
        ]  # fmt: skip
        for src, alt in charts:
            image = await coordinator.get(portal + src.replace("&amp;", "&"))
            assert image.status_code == 200 and image.headers["content-type"] == "image/svg+xml", (src, image.text)
            assert image.text.startswith("<?xml") and "<script" not in image.text and "tabel Alle cijfers" in alt
            assert "style-src 'unsafe-inline'" in image.headers["content-security-policy"]
            assert "gemeente=GM0363" in src and "van=" in src and "interval=kwartaal" in src
        assert '<th scope="rowgroup" colspan="2">Risicodomein</th>' in page.text
        no_such = await coordinator.get(f"{portal}/beheer/cijfers/grafiek/gemeenten.svg", params=asked)
        assert no_such.status_code == 404  # a gemeente's figures have no chart by gemeente
        country = await coordinator.get(
            f"{portal}/beheer/cijfers/grafiek/gemeenten.svg", params={**asked, "gemeente": ""}
        )
        assert country.status_code == 200 and country.headers["content-type"] == "image/svg+xml"
        bad = await coordinator.get(f"{portal}/beheer/cijfers/grafiek/stand.svg", params={**asked, "van": "gisteren"})
        assert bad.status_code == 422
        report = await coordinator.get(f"{portal}/beheer/cijfers/rapport.html", params=asked)
        assert report.status_code == 200 and "attachment" in report.headers["content-disposition"]
        assert "<html" in report.text and "Amsterdam" in report.text
        wrong = await coordinator.get(f"{portal}/beheer/cijfers", params={**asked, "gemeente": "Amsterdam"})
        assert wrong.status_code == 422 and "gemeentecode" in wrong.text
    async with httpx.AsyncClient() as operator:
        await sign_in(operator, portal, roles=["beheerder"])
        assert (await operator.get(f"{portal}/beheer/cijfers", params=asked)).status_code == 403
        assert (await operator.get(f"{portal}/beheer/cijfers/grafiek/stand.svg", params=asked)).status_code == 403


async def test_a_coordinator_picks_a_ggd_region_by_name_and_gets_its_figures_charts_csv_and_report(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, portal: str
) -> None:
    await returned_melding(system, tokens, amqp)  # one melding in Amsterdam: below the threshold, hidden
    today = date.today()
    asked = {"regio": "GG3406", "van": f"{today.year}-01-01", "tot": today.isoformat(), "interval": "jaar"}
    async with httpx.AsyncClient() as coordinator:
        await sign_in(coordinator, portal, roles=["coordinator"])
        form = await coordinator.get(f"{portal}/beheer/cijfers")
        assert form.status_code == 200 and '<option value="GG3406">GGD Amsterdam</option>' in form.text
        assert form.text.count('<option value="GG') == 25
        page = await coordinator.get(f"{portal}/beheer/cijfers", params=asked)
        assert page.status_code == 200, page.text
        assert '<option value="GG3406" selected>GGD Amsterdam</option>' in page.text
        assert "GGD Amsterdam, " in page.text and "Ouder-Amstel (GM0437)" in page.text
        assert "Zonder gemeente" not in page.text and "Meldingen in de hele periode: <strong>x</strong>" in page.text
        charts = re.findall(r'<img src="(/beheer/cijfers/grafiek/[a-z]+\.svg\?[^"]+)"', page.text)
        assert [src.split("/")[-1].split(".")[0] for src in charts][-1] == "gemeenten" and len(charts) == 6
        for src in charts:
            assert "regio=GG3406" in src
            image = await coordinator.get(portal + src.replace("&amp;", "&"))
            assert image.status_code == 200 and image.headers["content-type"] == "image/svg+xml", (src, image.text)
        csv_file = await coordinator.get(f"{portal}/beheer/cijfers.csv", params=asked)
        assert csv_file.status_code == 200 and f"{today.year},by_gemeente,GM0437,0" in csv_file.text.splitlines()
        assert ",without_gemeente," not in csv_file.text
        report = await coordinator.get(f"{portal}/beheer/cijfers/rapport.html", params=asked)
        assert report.status_code == 200 and "GGD Amsterdam (GG3406)" in report.text
        for wrong, said in (
            ({"regio": "GG9999"}, "is not a GGD region"),  # the service's word: no such region
            ({"regio": "Amsterdam"}, "Kies een GGD-regio uit de lijst"),
            ({"gemeente": "GM0363"}, "niet allebei"),
        ):
            refused = await coordinator.get(f"{portal}/beheer/cijfers", params={**asked, **wrong})
            assert refused.status_code == 422 and said in refused.text, wrong


async def test_a_privacy_officer_searches_the_audit_log_by_bsn_and_the_bsn_stays_off_the_page_and_urls(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, portal: str
) -> None:
    await returned_melding(system, tokens, amqp)
    async with httpx.AsyncClient() as officer:
        await sign_in(officer, portal, roles=["privacy-officer"])
        form = await officer.get(f"{portal}/beheer/toegang")
        assert form.status_code == 200
        wrong = await officer.post(f"{portal}/beheer/toegang", data={"csrf": csrf_of(form.text), "bsn": "123456789"})
        assert wrong.status_code == 422 and "geen geldig burgerservicenummer" in wrong.text
        found = await officer.post(f"{portal}/beheer/toegang", data={"csrf": csrf_of(form.text), "bsn": BSN})
        assert found.status_code == 200 and "Vastgelegde toegang" in found.text
        assert "verloskundige" in found.text and "jgz" in found.text  # the sender's and the recipient's accesses
        assert BSN not in found.text and BSN not in str(found.url)
        assert (await officer.get(f"{portal}/beheer/wachtend")).status_code == 403


async def test_an_operator_replays_a_dead_letter_from_the_waiting_page_audited_under_her_name(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel, portal: str
) -> None:
    message_id = f"poison-{uuid.uuid4()}"
    poison = aio_pika.Message(
        json.dumps({"melding_id": "x", "status": "teleported"}).encode(),
        message_id=message_id,
        type="delivery.status_changed",
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
    exchange = await amqp.get_exchange("kansrijk.events", ensure=False)
    await exchange.publish(poison, routing_key="delivery.status_changed")

    async def dead() -> list[dict[str, Any]]:
        answer = await system["routing"].get("/v1/dead-letters", headers=admin(tokens))
        return [d for d in answer.json()["items"] if d["message_id"] == message_id]

    [letter] = await eventually(dead, timeout=30)
    async with httpx.AsyncClient() as operator:
        await sign_in(operator, portal, roles=["beheerder"], org="90000012")
        page = await operator.get(f"{portal}/beheer/wachtend")
        assert f'action="/beheer/dead-letters/{letter["id"]}/opnieuw"' in page.text
        forged = await operator.post(f"{portal}/beheer/dead-letters/{letter['id']}/opnieuw", data={"csrf": "x"})
        assert forged.status_code == 403
        replayed = await operator.post(
            f"{portal}/beheer/dead-letters/{letter['id']}/opnieuw", data={"csrf": csrf_of(page.text)}
        )
        assert replayed.status_code == 303
    audit = await system["routing"].get("/v1/audit", headers=admin(tokens), params={"org_id": "90000012"})
    [record] = [r for r in audit.json()["items"] if r["resource_id"] == letter["id"] and r["action"] == "update"]
    assert record["resource_type"] == "dead-letter" and record["actor_sub"].startswith("staff-")
