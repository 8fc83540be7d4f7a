"""The FHIR R4 facade end to end (CONTRACT.md v1.1, "FHIR R4 facade"; docs/fhir.md), through real HTTP against
the running system: the examples of docs/fhir.md as a vendor would send them, the Task following the
melding through its statuses, retries, errors as OperationOutcome — every resource the facade answers
validated by fhir.resources' models."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aio_pika
import httpx
from fhir.resources.R4B import get_fhir_model_class

from tests.conftest import PUBLIC_FHIR_URL
from tests.e2e.flow import (
    BSN,
    RecipientQueue,
    body_of,
    eventually,
    new_org_id,
    put_gemeente,
    put_organisation,
    recipient,
    sender,
)
from tests.fhir_examples import FHIR_JSON, consent_example, example, melding_bundle, today
from tests.support import Tokens

Clients = dict[str, httpx.AsyncClient]


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    """`resource` as fhir.resources reads it: every element known, every type right (raises otherwise)."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
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
    assert set(resources) == {"Consent", "Task", "Subscription"}
    assert {i["code"] for i in resources["Subscription"]["interaction"]} == {"create", "read", "delete"}
    assert {i["code"] for i in resources["Consent"]["interaction"]} == {"create", "read", "update", "search-type"}
    assert [o["name"] for o in resources["Task"]["operation"]] == ["cancel"]
    assert [i["code"] for i in statement["rest"][0]["interaction"]] == ["transaction"]


async def test_a_consent_is_recorded_read_found_by_bsn_and_withdrawn_as_fhir(system: Clients, tokens: Tokens) -> None:
    client = system["fhir"]
    created = await post(client, "/fhir/Consent", consent_example(), sender(tokens))
    consent = fhir(created, 201)
    assert created.headers["location"] == f"Consent/{consent['id']}"
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
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * 4
    task_id = locations[3].removeprefix("Task/")
    assert locations == [None, None, f"ServiceRequest/{task_id}", f"Task/{task_id}"]

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
    assert issue(await client.get("/fhir/Task?stauts=completed", headers=sender(tokens)), 400)["code"] == "invalid"
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
