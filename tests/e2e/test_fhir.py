"""The FHIR R4 facade end to end (docs/fhir.md), through real HTTP against
the running system: the examples of docs/fhir.md as a vendor would send them, the Task following the
melding through its statuses, retries, errors as OperationOutcome, and a FHIR client written by others
(fhirclient) creating, reading, searching and paging — every resource the facade answers validated by
fhir.resources' models and by HL7's R4 JSON Schema."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any

import aio_pika
import httpx
import requests
from fhir.resources.R4B import get_fhir_model_class

from shared.clock import NL
from tests.conftest import PUBLIC_FHIR_URL
from tests.e2e.flow import (
    BSN,
    RecipientQueue,
    body_of,
    consented_patient,
    eventually,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    sender,
)
from tests.fhir_examples import FHIR_JSON, consent_example, example, melding_bundle, today
from tests.fhir_schema import schema_errors
from tests.support import Tokens

Clients = dict[str, httpx.AsyncClient]


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    """`resource` as fhir.resources reads it and as the R4 JSON Schema has it: every element known, every type
    right (raises otherwise)."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert schema_errors(resource) == [], schema_errors(resource)
    return resource


def fhir(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    return valid(response.json())


def post(client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return client.post(path, content=json.dumps(body), headers={**headers, "Content-Type": FHIR_JSON})


async def _consent(system: Clients, tokens: Tokens) -> str:
    created = fhir(await post(system["fhir"], "/fhir/Consent", consent_example(), sender(tokens)), 201)
    return str(created["id"])


async def _jgz(system: Clients, tokens: Tokens) -> str:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"])
    return jgz


async def _task(system: Clients, tokens: Tokens, task_id: str) -> dict[str, Any]:
    return fhir(await system["fhir"].get(f"/fhir/Task/{task_id}", headers=sender(tokens)), 200)


async def test_the_capability_statement_lists_what_is_supported_without_a_token(system: Clients) -> None:
    statement = fhir(await system["fhir"].get("/fhir/metadata"), 200)
    assert statement["resourceType"] == "CapabilityStatement" and statement["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == {"Consent", "ServiceRequest", "Task", "Subscription"}
    assert {i["code"] for i in resources["Subscription"]["interaction"]} == {"create", "read", "delete"}
    assert {i["code"] for i in resources["Consent"]["interaction"]} == {
        "create", "read", "vread", "update", "search-type"
    }  # fmt: skip
    assert {i["code"] for i in resources["ServiceRequest"]["interaction"]} == {"read", "vread"}
    assert {p["name"] for p in resources["Task"]["searchParam"]} >= {"status", "_lastUpdated", "_id", "_count"}
    assert [o["name"] for o in resources["Task"]["operation"]] == ["cancel"]
    assert [i["code"] for i in statement["rest"][0]["interaction"]] == ["transaction"]


async def test_a_consent_is_recorded_read_found_by_bsn_and_withdrawn_as_fhir(system: Clients, tokens: Tokens) -> None:
    client = system["fhir"]
    created = await post(client, "/fhir/Consent", consent_example(), sender(tokens))
    consent = fhir(created, 201)
    version = consent["meta"]["versionId"]
    assert created.headers["location"] == f"{PUBLIC_FHIR_URL}/Consent/{consent['id']}/_history/{version}"
    assert created.headers["etag"] == f'W/"{version}"'
    assert consent["status"] == "active"
    assert consent["patient"]["identifier"]["value"] == BSN
    assert sorted(c["coding"][0]["code"] for c in consent["provision"]["code"]) == ["financien-schulden", "verslaving"]
    assert consent["provision"]["period"]["start"] == today()
    # the v1 API holds the same consent: one source of truth
    v1 = await system["consent"].get(f"/v1/consents/{consent['id']}", headers=sender(tokens))
    assert sorted(v1.json()["risk_domains"]) == ["financien-schulden", "verslaving"] and v1.json()[
        "recipient_types"
    ] == ["jgz"]

    read = fhir(await client.get(f"/fhir/Consent/{consent['id']}", headers=sender(tokens)), 200)
    assert read == {**consent, "meta": read["meta"]}

    found = fhir(
        await client.post(
            "/fhir/Consent/_search",
            content=f"patient:identifier=http://fhir.nl/fhir/NamingSystem/bsn|{BSN}",
            headers={**sender(tokens), "Content-Type": "application/x-www-form-urlencoded"},
        ),
        200,
    )
    assert found["type"] == "searchset" and [e["resource"]["id"] for e in found["entry"]] == [consent["id"]]
    # every searchset has its self link; a POST search's names the search, never the BSN
    assert found["link"] == [{"relation": "self", "url": f"{PUBLIC_FHIR_URL}/Consent/_search"}] and found["total"] >= 1

    withdrawn = fhir(
        await client.put(
            f"/fhir/Consent/{consent['id']}",
            content=json.dumps({**consent, "status": "inactive"}),
            headers={**sender(tokens), "Content-Type": FHIR_JSON},
        ),
        200,
    )
    assert withdrawn["status"] == "inactive"
    v1 = await system["consent"].get(f"/v1/consents/{consent['id']}", headers=sender(tokens))
    assert v1.json()["status"] == "withdrawn"


async def test_a_bsn_in_a_get_query_string_is_refused_with_400(system: Clients, tokens: Tokens) -> None:
    for query in (f"patient:identifier=http://fhir.nl/fhir/NamingSystem/bsn|{BSN}", f"identifier={BSN}", "x=1"):
        refused = await system["fhir"].get(f"/fhir/Consent?{query}", headers=sender(tokens))
        outcome = fhir(refused, 400)
        assert outcome["resourceType"] == "OperationOutcome" and BSN not in refused.text


async def test_the_transaction_bundle_reaches_the_jgz_queue_and_its_task_follows_the_recipient(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    jgz = await _jgz(system, tokens)
    consent_id = await _consent(system, tokens)
    answer = fhir(await post(system["fhir"], "/fhir", melding_bundle(consent_id), sender(tokens)), 200)
    assert answer["type"] == "transaction-response"
    locations = [e["response"].get("location") for e in answer["entry"]]
    # the Patient and the Observation live on in the melding only: 200, no location of their own
    assert [e["response"]["status"] for e in answer["entry"]] == ["200 OK", "200 OK", "201 Created", "201 Created"]
    task_id = locations[3].removeprefix("Task/")
    assert locations == [None, None, f"ServiceRequest/{task_id}", f"Task/{task_id}"]
    # every id handed out can be read (routing may have moved it on since: a version of its own then)
    for entry, kind in zip(answer["entry"][2:], ("ServiceRequest", "Task"), strict=True):
        assert entry["response"]["etag"].startswith('W/"') and entry["response"]["lastModified"]
        read = await system["fhir"].get(f"/fhir/{kind}/{task_id}", headers=sender(tokens))
        resource = fhir(read, 200)
        assert resource["resourceType"] == kind and resource["id"] == task_id
        assert read.headers["etag"] == f'W/"{resource["meta"]["versionId"]}"'

    delivered = body_of(await RecipientQueue(amqp, jgz).next())
    assert delivered["melding_id"] == task_id
    assert sorted(delivered["risk_domains"]) == ["financien-schulden", "verslaving"]
    assert delivered["patient"]["address"]["house_number"] == "12"
    assert delivered["patient"]["address"]["house_number_suffix"] == "A"

    async def task_in(status: str) -> dict[str, Any] | None:
        task = await _task(system, tokens, task_id)
        return task if task["status"] == status else None

    task = await eventually(lambda: task_in("received"))
    assert task["focus"]["reference"] == f"ServiceRequest/{task_id}"
    [output] = task["output"]
    assert output["valueReference"]["identifier"] == {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": jgz}
    delivery_id = delivered["delivery_id"]
    for body in ({"status": "contact_made"}, {"status": "closed", "outcome": "phb-done"}):
        reported = await system["routing"].post(
            f"/v1/deliveries/{delivery_id}/status", headers=recipient(tokens, jgz), json=body
        )
        assert reported.status_code == 200, reported.text
        if body["status"] == "contact_made":
            await eventually(lambda: task_in("in-progress"))
    task = await eventually(lambda: task_in("completed"))
    [output] = task["output"]
    assert output["type"]["coding"][0]["code"] == "closed"
    assert output["extension"] == [{"url": "urn:kansrijk:outcome", "valueCode": "phb-done"}]

    found = fhir(await system["fhir"].get("/fhir/Task?status=completed", headers=sender(tokens)), 200)
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [task_id]
    # links and fullUrls name the facade as EHRs reach it (KANSRIJK_PUBLIC_URL), not this process's address
    assert found["link"][0]["url"].startswith(f"{PUBLIC_FHIR_URL}/Task?")
    assert found["entry"][0]["fullUrl"] == f"{PUBLIC_FHIR_URL}/Task/{task_id}"
    later = fhir(
        await system["fhir"].get("/fhir/Task?_lastUpdated=gt2999-01-01T00:00:00Z", headers=sender(tokens)), 200
    )
    assert "entry" not in later


async def test_a_task_is_cancelled_by_cancel_and_by_a_withdrawal_and_rejected_when_no_one_serves_the_address(
    system: Clients, tokens: Tokens
) -> None:
    await _jgz(system, tokens)
    fhir_client = system["fhir"]
    consent_id = await _consent(system, tokens)
    answer = fhir(await post(fhir_client, "/fhir", melding_bundle(consent_id), sender(tokens)), 200)
    task_id = answer["entry"][3]["response"]["location"].removeprefix("Task/")
    cancelled = fhir(await post(fhir_client, f"/fhir/Task/{task_id}/$cancel", example("cancel"), sender(tokens)), 200)
    assert cancelled["status"] == "cancelled" and cancelled["businessStatus"]["coding"][0]["code"] == "cancelled"

    # a withdrawal: the melding sent under the consent stops
    consent_id = await _consent(system, tokens)
    answer = fhir(await post(fhir_client, "/fhir", melding_bundle(consent_id), sender(tokens)), 200)
    task_id = answer["entry"][3]["response"]["location"].removeprefix("Task/")
    consent = fhir(await fhir_client.get(f"/fhir/Consent/{consent_id}", headers=sender(tokens)), 200)
    withdrawn = await fhir_client.put(
        f"/fhir/Consent/{consent_id}",
        content=json.dumps({**consent, "status": "inactive"}),
        headers={**sender(tokens), "Content-Type": FHIR_JSON},
    )
    fhir(withdrawn, 200)

    async def withdrawn_task() -> dict[str, Any] | None:
        task = await _task(system, tokens, task_id)
        return task if task["status"] == "cancelled" else None

    task = await eventually(withdrawn_task)
    assert task["businessStatus"]["coding"][0]["code"] == "withdrawn"

    # an address no organisation serves: the melding waits, its Task is rejected and says why
    consent_id = await _consent(system, tokens)
    bundle = melding_bundle(consent_id)
    bundle["entry"][0]["resource"]["address"][0]["postalCode"] = "9999 ZZ"
    answer = fhir(await post(fhir_client, "/fhir", bundle, sender(tokens)), 200)
    task_id = answer["entry"][3]["response"]["location"].removeprefix("Task/")

    async def rejected_task() -> dict[str, Any] | None:
        task = await _task(system, tokens, task_id)
        return task if task["status"] == "rejected" else None

    task = await eventually(rejected_task)
    assert task["businessStatus"]["coding"][0]["code"] == "unroutable" and task["statusReason"]["text"]


async def test_the_same_bundle_sent_again_makes_one_melding(system: Clients, tokens: Tokens) -> None:
    consent_id = await _consent(system, tokens)
    bundle = melding_bundle(consent_id, bundle_id="bundle-42")
    answers = [fhir(await post(system["fhir"], "/fhir", bundle, sender(tokens)), 200) for _ in range(3)]
    tasks = {a["entry"][3]["response"]["location"] for a in answers}
    assert len(tasks) == 1
    listed = await system["melding"].get("/v1/meldingen", headers=sender(tokens))
    assert len(listed.json()["items"]) == 1
    # the same identifier with another Bundle: a conflict, not a second melding
    other = melding_bundle(consent_id, bundle_id="bundle-42")
    other["entry"][2]["resource"]["priority"] = "urgent"
    outcome = fhir(await post(system["fhir"], "/fhir", other, sender(tokens)), 409)
    assert outcome["issue"][0]["code"] == "duplicate"
    # in FHIR's words: the element reused, not the v1 Idempotency-Key the facade made of it
    assert outcome["issue"][0]["expression"] == ["Bundle.identifier"]
    assert "Idempotency" not in outcome["issue"][0]["diagnostics"]
    # an Idempotency-Key header counts as in v1 (for a melding of its own: one is open per patient and type)
    [task] = tasks
    fhir(await post(system["fhir"], f"/fhir/{task}/$cancel", example("cancel"), sender(tokens)), 200)
    keyed = melding_bundle(consent_id)
    del keyed["identifier"]
    headers = {**sender(tokens), "Idempotency-Key": str(uuid.uuid4())}
    first = fhir(await post(system["fhir"], "/fhir", keyed, headers), 200)
    again = fhir(await post(system["fhir"], "/fhir", keyed, headers), 200)
    assert first["entry"][3]["response"]["location"] == again["entry"][3]["response"]["location"]


async def test_errors_are_operation_outcomes_with_the_mapped_status_and_no_personal_data(
    system: Clients, tokens: Tokens
) -> None:
    client = system["fhir"]
    consent_id = await _consent(system, tokens)

    def issue(response: httpx.Response, status: int) -> dict[str, Any]:
        outcome = fhir(response, status)
        assert outcome["resourceType"] == "OperationOutcome"
        for value in (BSN, "Sanne", "de Vries", "methadon"):
            assert value not in response.text
        return dict(outcome["issue"][0])

    unknown_system = melding_bundle(consent_id)
    unknown_system["entry"][2]["resource"]["reasonCode"][0]["coding"][0]["system"] = "http://snomed.info/sct"
    found = issue(await post(client, "/fhir", unknown_system, sender(tokens)), 422)
    assert found["code"] == "code-invalid" and found["expression"] == ["ServiceRequest.reasonCode"]

    unknown_element = melding_bundle(consent_id)
    unknown_element["entry"][0]["resource"]["favouriteColour"] = "blauw"
    assert issue(await post(client, "/fhir", unknown_element, sender(tokens)), 422)["code"] == "structure"
    key_is_a_bsn = melding_bundle(consent_id)
    key_is_a_bsn["entry"][0]["resource"][BSN] = "x"  # named by its position, never echoed
    assert issue(await post(client, "/fhir", key_is_a_bsn, sender(tokens)), 422)["expression"] == [
        "Bundle.entry[0].resource"
    ]
    dropped = melding_bundle(consent_id)
    dropped["entry"][0]["resource"]["gender"] = "female"
    assert issue(await post(client, "/fhir", dropped, sender(tokens)), 422)["expression"] == ["Patient.gender"]

    bad_postcode = melding_bundle(consent_id)
    bad_postcode["entry"][0]["resource"]["address"][0]["postalCode"] = "0000 AA"
    found = issue(await post(client, "/fhir", bad_postcode, sender(tokens)), 422)
    assert found["expression"] == ["Patient.address.postalCode"]

    other_patient = melding_bundle(consent_id)
    other_patient["entry"][0]["resource"]["identifier"][0]["value"] = "123456782"
    found = issue(await post(client, "/fhir", other_patient, sender(tokens)), 403)
    assert found["details"]["coding"][0]["code"] == "consent-required"

    assert issue(await post(client, "/fhir", melding_bundle(consent_id), {}), 401)["code"] == "login"
    reader = tokens.bearer(org_id="10000001", org_type="verloskundige", scopes="melding:read")
    assert issue(await post(client, "/fhir", melding_bundle(consent_id), reader), 403)["code"] == "forbidden"
    missing = str(uuid.uuid4())
    assert issue(await client.get(f"/fhir/Task/{missing}", headers=sender(tokens)), 404)["code"] == "not-found"
    assert issue(await client.get("/fhir/Task/not-an-id", headers=sender(tokens)), 404)["code"] == "not-found"
    assert issue(await client.get("/fhir/Patient/1", headers=sender(tokens)), 404)["code"] == "not-found"
    misspelt = await client.get("/fhir/Task?stauts=completed", headers=sender(tokens))
    assert issue(misspelt, 400)["code"] == "not-supported"
    as_text = await client.post("/fhir", content="<Bundle/>", headers={**sender(tokens), "Content-Type": "text/xml"})
    assert issue(as_text, 415)["code"] == "not-supported"
    not_json = await client.post("/fhir", content="{", headers={**sender(tokens), "Content-Type": FHIR_JSON})
    assert issue(not_json, 400)["code"] == "structure"
    change = await client.put(
        f"/fhir/Consent/{consent_id}",
        content=json.dumps(consent_example()),
        headers={**sender(tokens), "Content-Type": FHIR_JSON},
    )
    assert issue(change, 422)["expression"] == ["Consent.status"]


def _dutch_day(instant: str) -> str:
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(NL).date().isoformat()


async def _cancelled_and_open_tasks(system: Clients, tokens: Tokens, org: str) -> list[str]:
    """Five meldingen of `org` (newest last), each for a patient of her own; the 1st, 3rd and 5th cancelled."""
    headers = sender(tokens, org)
    task_ids = []
    for number in range(5):
        consent_id, bsn = await consented_patient(system, tokens, types=["jgz"], org_id=org)
        bundle = melding_bundle(consent_id)
        bundle["entry"][0]["resource"]["identifier"][0]["value"] = bsn
        answer = fhir(await post(system["fhir"], "/fhir", bundle, headers), 200)
        task_id = answer["entry"][3]["response"]["location"].removeprefix("Task/")
        if number % 2 == 0:
            fhir(await post(system["fhir"], f"/fhir/Task/{task_id}/$cancel", example("cancel"), headers), 200)
        task_ids.append(task_id)
    return task_ids


async def test_a_task_search_page_holds_count_matches_with_total_and_self_and_next_links(
    system: Clients, tokens: Tokens
) -> None:
    org = new_org_id()
    headers = sender(tokens, org)
    task_ids = await _cancelled_and_open_tasks(system, tokens, org)
    cancelled = [task_ids[4], task_ids[2], task_ids[0]]  # newest first
    client = system["fhir"]

    first = fhir(await client.get("/fhir/Task?status=cancelled&_count=2&_total=accurate", headers=headers), 200)
    # the open melding between the cancelled ones is filtered out before the page is cut: two matches
    assert [e["resource"]["id"] for e in first["entry"]] == cancelled[:2]
    assert first["total"] == 3
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert links["self"] == f"{PUBLIC_FHIR_URL}/Task?status=cancelled&_count=2&_total=accurate"
    next_path = links["next"].removeprefix(PUBLIC_FHIR_URL)
    second = fhir(await client.get(f"/fhir{next_path}", headers=headers), 200)
    assert [e["resource"]["id"] for e in second["entry"]] == cancelled[2:]
    assert "next" not in {link["relation"] for link in second["link"]}

    counted = fhir(await client.get("/fhir/Task?status=cancelled&_summary=count", headers=headers), 200)
    assert counted["total"] == 3 and "entry" not in counted
    # _lastUpdated without a prefix: that day (in the Netherlands)
    newest = fhir(await client.get(f"/fhir/Task/{cancelled[0]}", headers=headers), 200)
    day = _dutch_day(newest["meta"]["lastUpdated"])
    of_day = fhir(await client.get(f"/fhir/Task?_lastUpdated={day}&_count=100", headers=headers), 200)
    assert cancelled[0] in [e["resource"]["id"] for e in of_day["entry"]]
    assert {_dutch_day(e["resource"]["meta"]["lastUpdated"]) for e in of_day["entry"]} == {day}
    before = fhir(await client.get(f"/fhir/Task?_lastUpdated=lt{day}", headers=headers), 200)
    assert "entry" not in before
    by_id = fhir(await client.get(f"/fhir/Task?_id={task_ids[1]},{task_ids[3]}", headers=headers), 200)
    assert sorted(e["resource"]["id"] for e in by_id["entry"]) == sorted([task_ids[1], task_ids[3]])
    assert {link["relation"] for link in by_id["link"]} == {"self"}

    # an unknown parameter: 400, unless lenient, which ignores it and leaves it out of the self link
    fhir(await client.get("/fhir/Task?status=cancelled&_elements=id", headers=headers), 400)
    lenient = await client.get(
        "/fhir/Task?status=cancelled&_elements=id&_count=5", headers={**headers, "Prefer": "handling=lenient"}
    )
    found = fhir(lenient, 200)
    assert [e["resource"]["id"] for e in found["entry"] if e["search"]["mode"] == "match"] == cancelled
    assert found["link"][0]["url"] == f"{PUBLIC_FHIR_URL}/Task?status=cancelled&_count=5"
    [warning] = [e["resource"] for e in found["entry"] if e["search"]["mode"] == "outcome"]
    assert warning["issue"][0]["severity"] == "warning"


async def test_reads_answer_their_version_take_format_and_refuse_xml(system: Clients, tokens: Tokens) -> None:
    client = system["fhir"]
    consent_id = await _consent(system, tokens)
    answer = fhir(
        await post(client, "/fhir", melding_bundle(consent_id, bundle_id=str(uuid.uuid4())), sender(tokens)), 200
    )
    task_id = answer["entry"][3]["response"]["location"].removeprefix("Task/")
    for fmt in ("json", "application/json", "application/fhir+json"):
        read = await client.get(f"/fhir/Task/{task_id}", params={"_format": fmt}, headers=sender(tokens))
        task = fhir(read, 200)
        assert read.headers["etag"] == f'W/"{task["meta"]["versionId"]}"' and task["meta"]["lastUpdated"]
        assert read.headers["last-modified"].endswith("GMT")

    async def read_then_vread() -> dict[str, Any] | None:
        """The current version read back by its id (vread), unless routing moved the Task on in between."""
        task = fhir(await client.get(f"/fhir/Task/{task_id}", headers=sender(tokens)), 200)
        version = await client.get(f"/fhir/Task/{task_id}/_history/{task['meta']['versionId']}", headers=sender(tokens))
        if version.status_code == 404:
            moved = fhir(await client.get(f"/fhir/Task/{task_id}", headers=sender(tokens)), 200)
            assert moved["meta"]["versionId"] != task["meta"]["versionId"], "vread refused the current version"
            return None
        return fhir(version, 200) if fhir(version, 200)["meta"] == task["meta"] else None

    assert await eventually(read_then_vread)
    # a version the facade never gave out is not found
    fhir(await client.get(f"/fhir/Task/{task_id}/_history/0000000000000000", headers=sender(tokens)), 404)
    request = fhir(await client.get(f"/fhir/ServiceRequest/{task_id}", headers=sender(tokens)), 200)
    assert request["subject"]["identifier"]["value"] == BSN
    assert request["extension"][0]["valueReference"]["reference"] == f"Consent/{consent_id}"
    assert [c["code"] for c in request["performerType"]["coding"]] == ["jgz"]

    for asked in ({"params": {"_format": "xml"}}, {"headers": {"Accept": "application/fhir+xml"}}):
        refused = await client.get(
            f"/fhir/Task/{task_id}",
            params=asked.get("params"),
            headers={**sender(tokens), **asked.get("headers", {})},
        )
        assert fhir(refused, 406)["issue"][0]["code"] == "not-supported"
    assert fhir(await client.get("/fhir/metadata", params={"_format": "application/fhir+xml"}), 406)
    accepts_both = {**sender(tokens), "Accept": "application/fhir+xml;q=0.9, application/fhir+json"}
    fhir(await client.get(f"/fhir/Task/{task_id}", headers=accepts_both), 200)


async def test_prefer_return_is_honoured_on_create_and_update(system: Clients, tokens: Tokens) -> None:
    client = system["fhir"]
    minimal = await post(client, "/fhir/Consent", consent_example(), {**sender(tokens), "Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b""
    location = minimal.headers["location"]
    assert location.startswith(f"{PUBLIC_FHIR_URL}/Consent/") and "/_history/" in location
    consent_id, version = location.removeprefix(f"{PUBLIC_FHIR_URL}/Consent/").split("/_history/")
    read = fhir(await client.get(f"/fhir/Consent/{consent_id}/_history/{version}", headers=sender(tokens)), 200)
    assert minimal.headers["etag"] == f'W/"{version}"'

    told = await client.put(
        f"/fhir/Consent/{consent_id}",
        content=json.dumps({**read, "status": "inactive"}),
        headers={**sender(tokens), "Content-Type": FHIR_JSON, "Prefer": "return=OperationOutcome"},
    )
    outcome = fhir(told, 200)
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "information"
    withdrawn = fhir(await client.get(f"/fhir/Consent/{consent_id}", headers=sender(tokens)), 200)
    assert withdrawn["status"] == "inactive" and told.headers["etag"] == f'W/"{withdrawn["meta"]["versionId"]}"'
    assert withdrawn["meta"]["versionId"] != version  # a change is a new version
    represented = await post(
        client, "/fhir/Consent", consent_example(), {**sender(tokens), "Prefer": "return=representation"}
    )
    assert fhir(represented, 201)["resourceType"] == "Consent"


class _Ingress(requests.adapters.HTTPAdapter):
    """What the ingress does in production: the facade's public address (`KANSRIJK_PUBLIC_URL`, in the links it
    answers) reaches the facade, here on its loopback port."""

    def __init__(self, local_base: str) -> None:
        super().__init__()
        self.local_base = local_base

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        request.url = str(request.url).replace(PUBLIC_FHIR_URL, self.local_base, 1)
        return super().send(request, *args, **kwargs)


def _fhir_client(base_url: str, headers: dict[str, str]) -> Any:
    from fhirclient import client

    smart = client.FHIRClient(settings={"app_id": "kansrijk-e2e", "api_base": f"{base_url}/fhir/"})
    smart.server.session.headers.update(headers)
    smart.server.session.mount(f"{PUBLIC_FHIR_URL}/", _Ingress(f"{base_url}/fhir"))
    return smart.server


async def test_a_fhir_client_written_by_others_creates_reads_searches_and_pages(
    system: Clients, tokens: Tokens
) -> None:
    from fhirclient.models.bundle import Bundle
    from fhirclient.models.capabilitystatement import CapabilityStatement
    from fhirclient.models.consent import Consent
    from fhirclient.models.servicerequest import ServiceRequest
    from fhirclient.models.task import Task

    org = new_org_id()
    task_ids = await _cancelled_and_open_tasks(system, tokens, org)
    server = _fhir_client(str(system["fhir"].base_url).rstrip("/"), sender(tokens, org))

    def as_a_vendor_would() -> dict[str, Any]:
        statement = CapabilityStatement.read_from("metadata", server)
        created = Consent(Consent(consent_example()).create(server))  # parsed by fhirclient's R4 model
        read = Consent.read(created.id, server)
        # POSTed to the base as FHIR has it, as JSON: fhirclient's models drop primitive extensions (`_line`),
        # and with them the house number nl-core puts there
        sent = Bundle(server.post_json("", melding_bundle(read.id)).json())
        task_id = sent.entry[3].response.location.removeprefix("Task/")
        task = Task.read(task_id, server)
        request = ServiceRequest.read(task.focus.reference.removeprefix("ServiceRequest/"), server)
        pages = list(Task.where({"status": "cancelled", "_count": "2"}).perform_iter(server))
        return {
            "resources": [r["type"] for r in statement.as_json()["rest"][0]["resource"]],
            "consent": (created.id, read.id, read.status),
            "task": (task.id, task.status, request.id, request.status),
            "pages": [[e.resource.id for e in page.entry or []] for page in pages],
        }

    seen = await asyncio.to_thread(as_a_vendor_would)
    assert "ServiceRequest" in seen["resources"] and "Task" in seen["resources"]
    consent_id, read_id, status = seen["consent"]
    assert read_id == consent_id and status == "active"
    task_id, task_status, request_id, request_status = seen["task"]
    assert request_id == task_id and task_status in ("requested", "received", "rejected")
    assert request_status in ("active", "revoked")
    # paging through next links as the client follows them: two full pages, then the last
    assert seen["pages"] == [[task_ids[4], task_ids[2]], [task_ids[0]]]
