"""The FHIR facade's decisions, without a server: a v1 melding's Task status, consents both ways, a Bundle
read into the v1 body, problems as OperationOutcomes and Task search parameters."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from services.fhir.domain import codes
from services.fhir.domain.consent import V1_FIELDS as CONSENT_FIELDS
from services.fhir.domain.consent import consent_create, consent_resource, is_withdrawal
from services.fhir.domain.melding import V1_FIELDS, cancel_reason, melding_request, task_resource, task_status
from services.fhir.domain.outcome import FhirError, from_problem
from services.fhir.domain.search import TaskSearch
from tests.fhir_examples import example, melding_bundle

CONSENT_ID = "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10"


def melding(status: str, *deliveries: str, **delivery: Any) -> dict[str, Any]:
    return {
        "id": "0b7c8e0e-5a43-4e0a-8d8e-6c1f7d1c2a10",
        "status": status,
        "created_at": "2026-12-01T09:00:00+00:00",
        "updated_at": "2026-12-01T10:00:00+01:00",
        "sender": {"org_id": "10000001", "org_type": "verloskundige", "sub": "m.jansen"},
        "not_delivered_reason": None,
        "deliveries": [
            {"delivery_id": f"d{i}", "org_id": "12345678", "org_name": "JGZ Amsterdam", "status": s, **delivery}
            for i, s in enumerate(deliveries)
        ],
    }


@pytest.mark.parametrize(
    ("status", "deliveries", "expected"),
    [
        ("accepted", (), "requested"),
        ("delivered", ("queued",), "received"),
        ("delivered", ("received", "queued"), "received"),
        ("delivered", ("contact_made", "received"), "in-progress"),
        ("delivered", ("closed", "received"), "in-progress"),
        ("delivered", ("closed", "closed"), "completed"),
        ("delivered", ("closed", "returned"), "completed"),  # one sent it back, the other closed it
        ("delivered", ("returned", "returned"), "rejected"),
        ("delivered", ("returned", "retracted", "received"), "received"),  # a returned one rerouted
        ("unroutable", (), "rejected"),
        ("not_delivered", (), "rejected"),
        ("cancelled", ("retracted",), "cancelled"),
        ("withdrawn", ("retracted",), "cancelled"),
    ],
)
def test_the_task_status_follows_the_melding_and_its_deliveries(
    status: str, deliveries: tuple[str, ...], expected: str
) -> None:
    assert task_status(melding(status, *deliveries)) == expected


def test_a_task_names_each_recipient_by_ura_with_its_delivery_status_and_outcome() -> None:
    task = task_resource(melding("delivered", "closed", outcome="phb-done"))
    get_fhir_model_class("Task").model_validate(task)
    assert task["meta"]["lastUpdated"] == "2026-12-01T09:00:00Z"  # in UTC
    [output] = task["output"]
    assert output["valueReference"]["identifier"] == {"system": codes.URA_SYSTEM, "value": "12345678"}
    assert output["type"]["coding"] == [{"system": codes.DELIVERY_STATUS_SYSTEM, "code": "closed"}]
    assert output["extension"] == [{"url": codes.OUTCOME_EXTENSION, "valueCode": "phb-done"}]
    assert task["requester"]["identifier"]["value"] == "10000001" and "statusReason" not in task
    wijkteam = melding("delivered", "received")
    wijkteam["deliveries"][0]["org_id"] = "wijkteam-noord"
    [output] = task_resource(wijkteam)["output"]
    assert output["valueReference"]["identifier"]["system"] == codes.ORGANISATION_SYSTEM
    assert task_resource(melding("unroutable"))["statusReason"]["text"]


def test_a_consent_goes_to_v1_and_back_unchanged() -> None:
    body = consent_create(example("consent", today="2026-12-01"))
    assert body == {
        "patient": {"bsn": "999999990"},
        "recipient_types": ["jgz"],
        "method": "verbal",
        "given_at": "2026-12-01",
        "informed_about": ["purpose", "recipients", "data", "withdrawal"],
        "risk_domains": ["verslaving", "financien-schulden"],
    }
    v1 = {
        **body,
        "id": CONSENT_ID,
        "valid_until": "2027-12-01",
        "status": "active",
        "purpose": "kansrijke-start-melding",
        "recorded_by": {"org_id": "10000001", "org_type": "verloskundige", "sub": "m.jansen"},
        "created_at": "2026-12-01T09:00:00Z",
        "withdrawn_at": None,
    }
    resource = consent_resource(v1)
    get_fhir_model_class("Consent").model_validate(resource)
    assert consent_create({**resource, "id": None}) == {**body, "valid_until": "2027-12-01"}
    assert consent_resource({**v1, "status": "expired"})["status"] == "inactive"
    everything = consent_resource({**v1, "risk_domains": None})
    assert "code" not in everything["provision"]  # no provision.code: every domain
    assert is_withdrawal({**resource, "status": "inactive"}, CONSENT_ID)


def _error(call: Any, *args: Any) -> FhirError:
    with pytest.raises(FhirError) as raised:
        call(*args)
    return raised.value


def test_what_a_consent_does_not_say_or_says_in_another_system_is_refused() -> None:
    consent = example("consent", today="2026-12-01")
    other_system = copy.deepcopy(consent)
    other_system["provision"]["code"][0]["coding"][0]["system"] = "http://snomed.info/sct"
    error = _error(consent_create, other_system)
    assert (error.status, error.code, error.expression) == (422, "code-invalid", "Consent.provision.code")
    unknown_code = copy.deepcopy(consent)
    unknown_code["provision"]["actor"][0]["role"]["coding"][0]["code"] = "huisarts"
    assert _error(consent_create, unknown_code).code == "code-invalid"
    no_method = {**consent, "extension": consent["extension"][1:]}
    assert _error(consent_create, no_method).expression == "Consent.extension"
    not_a_bsn = copy.deepcopy(consent)
    not_a_bsn["patient"]["identifier"]["system"] = "urn:oid:2.16.840.1.113883.2.4.6.3"
    assert _error(consent_create, not_a_bsn).expression == "Consent.patient.identifier"
    no_role = copy.deepcopy(consent)
    no_role["provision"]["actor"][0]["role"] = None  # required by FHIR, not by fhir.resources' model
    assert _error(consent_create, no_role).expression == "Consent.provision.actor.role"
    assert _error(consent_create, {**consent, "contained": [[]]}).code == "structure"  # a TypeError inside
    unknown_element = {**consent, "mood": "blij"}
    error = _error(consent_create, unknown_element)
    assert error.code == "structure" and "blij" not in error.diagnostics
    changed = _error(is_withdrawal, consent, CONSENT_ID)  # status active: not a withdrawal
    assert changed.expression == "Consent.status"


def test_every_given_name_is_kept_and_a_null_one_is_no_given_name() -> None:
    bundle = melding_bundle(CONSENT_ID)
    bundle["entry"][0]["resource"]["name"][0]["given"] = ["Sanne", "Maria"]
    assert melding_request(bundle).body["patient"]["name"]["given"] == "Sanne Maria"
    bundle["entry"][0]["resource"]["name"][0].update(given=[None], _given=[{"id": "g"}])
    assert _error(melding_request, bundle).expression == "Patient.name"


def test_a_bundle_becomes_the_v1_melding_with_its_idempotency_key() -> None:
    read = melding_request(melding_bundle(CONSENT_ID, bundle_id="b-1"))
    assert read.entry_types == ["Patient", "Observation", "ServiceRequest", "Task"]
    assert read.body["consent_id"] == CONSENT_ID
    assert read.body["patient"]["address"] == {
        "postcode": "1011 AB", "house_number": "12", "house_number_suffix": "A", "city": "Amsterdam"
    }  # fmt: skip
    assert read.body["risk_domains"] == ["verslaving", "financien-schulden"]
    assert read.body["recipient_types"] == ["jgz"] and read.body["urgency"] == "regular"
    assert read.body["contact"] == {"name": "M. Jansen, verloskundige"}
    assert (
        read.bundle_key and read.bundle_key == melding_request(melding_bundle(CONSENT_ID, bundle_id="b-1")).bundle_key
    )
    assert read.bundle_key != melding_request(melding_bundle(CONSENT_ID, bundle_id="b-2")).bundle_key


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        (lambda b: b["entry"].pop(1), "Bundle.entry"),  # no Observation: no due date
        (lambda b: b["entry"][0]["resource"]["address"][0].pop("_line"), "Patient.address.line"),
        (lambda b: b["entry"][2]["resource"].update(priority="stat"), "ServiceRequest.priority"),
        (lambda b: b["entry"][2]["resource"].update(subject={"reference": "Patient/1"}), "ServiceRequest.subject"),
        (lambda b: b["entry"][3]["resource"].update(focus={"reference": "urn:uuid:x"}), "Task.focus"),
        (lambda b: b["entry"][1]["resource"]["code"]["coding"][0].update(code="11779-6"), "Observation.code"),
        (lambda b: b["entry"][1]["resource"].update(code=None), "Observation.code"),
        (lambda b: b["entry"][2]["resource"].update(extension=[]), "ServiceRequest.extension"),
        (lambda b: b.update(type="batch"), "Bundle.type"),
        (lambda b: b["entry"][0].update(request={"method": "PUT", "url": "Patient/1"}), "Bundle.entry[0].request"),
    ],
)
def test_a_bundle_that_is_not_a_melding_is_refused_naming_the_element(change: Any, expression: str) -> None:
    bundle = melding_bundle(CONSENT_ID)
    change(bundle)
    error = _error(melding_request, bundle)
    assert error.status == 422 and error.expression == expression


def test_a_v1_problem_becomes_an_outcome_with_the_fhir_element_and_its_type() -> None:
    outcome = from_problem(
        {
            "type": "urn:kansrijk:problem:validation",
            "detail": "2 fields are invalid",
            "errors": [
                {"field": "patient.address.postcode", "message": "not a Dutch postcode", "code": "value_error"},
                {"field": "risk_domains[0]", "message": "unknown", "code": "literal_error"},
            ],
        },
        V1_FIELDS,
    )
    get_fhir_model_class("OperationOutcome").model_validate(outcome)
    assert [i["expression"] for i in outcome["issue"]] == [
        ["Patient.address.postalCode"],
        ["ServiceRequest.reasonCode"],
    ]
    assert {i["code"] for i in outcome["issue"]} == {"invalid"}
    # the diagnostics name the FHIR element too, never the v1 field a FHIR client does not know
    assert [i["diagnostics"] for i in outcome["issue"]] == [
        "Patient.address.postalCode: not a Dutch postcode",
        "ServiceRequest.reasonCode: unknown",
    ]
    unmapped = from_problem({"type": "urn:kansrijk:problem:validation", "errors": [{"field": "x.y", "message": "bad"}]})
    assert unmapped["issue"][0]["diagnostics"] == "bad" and "expression" not in unmapped["issue"][0]
    refused = from_problem({"type": "urn:kansrijk:problem:consent-required", "detail": "the consent has expired"})
    assert refused["issue"][0]["code"] == "forbidden"
    assert refused["issue"][0]["details"]["coding"][0]["code"] == "consent-required"
    repeated = from_problem(
        {
            "type": "urn:kansrijk:problem:conflict",
            "detail": "an open melding: see `existing`",
            "existing": "/v1/meldingen/m1",
        }
    )
    assert repeated["issue"][0]["diagnostics"] == "an open melding: Task/m1"
    assert from_problem({"errors": [{"field": "given_at", "message": "x"}]}, CONSENT_FIELDS)["issue"][0][
        "expression"
    ] == ["Consent.dateTime"]


def test_an_unknown_element_is_named_by_its_position_never_by_its_key() -> None:
    bundle = melding_bundle(CONSENT_ID)
    bundle["entry"][0]["resource"]["999999990"] = "x"  # a client's key may hold anything: a BSN, a name
    error = _error(melding_request, bundle)
    assert error.status == 422 and error.code == "structure"
    assert "999999990" not in str(error.outcome())
    assert error.expression == "Bundle.entry[0].resource"


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        (
            lambda b: b["entry"][0]["resource"]["identifier"].append(
                {"system": codes.BSN_SYSTEM, "value": "123456782"}
            ),
            "Patient.identifier",
        ),
        (lambda b: b["entry"][0]["resource"].update(gender="female"), "Patient.gender"),
        (lambda b: b["entry"][0]["resource"].update(contact=[{"name": {"family": "Jansen"}}]), "Patient.contact"),
        (
            lambda b: b["entry"][2]["resource"].update(contained=[{"resourceType": "Patient", "id": "p"}]),
            "ServiceRequest.contained",
        ),
        (lambda b: b["entry"][0]["resource"].update(_birthDate={"extension": []}), "Patient.birthDate.extension"),
        (lambda b: b["entry"][0]["resource"]["address"].append({"postalCode": "1011 AB"}), "Patient.address"),
        (lambda b: b["entry"][3]["resource"].update(description="x"), "Task.description"),
        (lambda b: b["entry"][1]["resource"].update(note=[{"text": "x"}]), "Observation.note"),
        (lambda b: b["entry"][0]["request"].update(ifNoneExist="x"), "Bundle.entry[0].request.ifNoneExist"),
    ],
)
def test_what_the_facade_would_throw_away_is_refused_naming_the_element(change: Any, expression: str) -> None:
    bundle = melding_bundle(CONSENT_ID)
    change(bundle)
    error = _error(melding_request, bundle)
    assert error.status == 422 and error.expression == expression, error.diagnostics


# 1 December 2026 in the Netherlands (UTC+1): from 2026-11-30T23:00Z to 2026-12-01T23:00Z
def _updated(moment: str) -> dict[str, Any]:
    return {"id": "t-1", "status": "completed", "meta": {"lastUpdated": moment}}


@pytest.mark.parametrize(
    ("value", "inside", "outside"),
    [
        (
            "2026-12-01",
            ["2026-11-30T23:00:00Z", "2026-12-01T22:59:59Z"],
            ["2026-11-30T22:59:59Z", "2026-12-01T23:00:00Z"],
        ),
        ("eq2026-12-01", ["2026-12-01T12:00:00Z"], ["2026-12-02T12:00:00Z"]),
        ("gt2026-12-01", ["2026-12-01T23:00:00Z"], ["2026-12-01T22:59:59Z"]),
        ("ge2026-12-01", ["2026-11-30T23:00:00Z"], ["2026-11-30T22:59:59Z"]),
        ("lt2026-12-01", ["2026-11-30T22:59:59Z"], ["2026-11-30T23:00:00Z"]),
        ("le2026-12-01", ["2026-12-01T22:59:59Z"], ["2026-12-01T23:00:00Z"]),
        ("2026-12", ["2026-11-30T23:00:00Z", "2026-12-31T22:59:59Z"], ["2026-12-31T23:00:00Z"]),
        ("2026", ["2025-12-31T23:00:00Z"], ["2026-12-31T23:00:00Z", "2025-12-31T22:59:59Z"]),
        ("gt2026-12-01T00:00:00 01:00", ["2026-11-30T23:00:00.000001Z"], ["2026-11-30T23:00:00Z"]),
        ("le2026-12-01T00:00:00Z", ["2026-12-01T00:00:00Z"], ["2026-12-01T00:00:00.000001Z"]),
        ("2026-12-01T10:00:00Z", ["2026-12-01T10:00:00Z"], ["2026-12-01T10:00:01Z"]),
    ],
)
def test_last_updated_is_the_range_of_its_precision_and_eq_without_a_prefix(
    value: str, inside: list[str], outside: list[str]
) -> None:
    search = TaskSearch.of([("_lastUpdated", value)])
    assert all(search.matches(_updated(m)) for m in inside)
    assert not any(search.matches(_updated(m)) for m in outside)


def test_task_search_takes_status_id_count_summary_and_total() -> None:
    search = TaskSearch.of(
        [
            ("status", "in-progress,completed"),
            ("_lastUpdated", "ge2026-12-01"),
            ("_count", "50"),
            ("_total", "accurate"),
        ]
    )
    assert search.statuses == {"in-progress", "completed"} and search.count == 50 and search.total
    assert search.melding_statuses == ("delivered",)  # the database narrows, the deliveries decide
    assert search.updated_since is not None and search.updated_since.isoformat() == "2026-12-01T00:00:00+01:00"
    assert not search.matches({**_updated("2026-12-01T09:00:00Z"), "status": "received"})
    assert TaskSearch.of([("status", "cancelled")]).melding_statuses == ("cancelled", "withdrawn")
    assert search.query(cursor="abc")[-1] == ("_cursor", "abc")
    by_id = TaskSearch.of([("_id", "t-1,t-2")])
    assert by_id.ids == ("t-1", "t-2") and by_id.matches(_updated("2026-12-01T09:00:00Z"))
    assert not by_id.matches({**_updated("2026-12-01T09:00:00Z"), "id": "t-3"})
    assert TaskSearch.of([("_summary", "count")]).summary_count
    assert TaskSearch.of([("_count", "0")]).summary_count
    assert not TaskSearch.of([]).total and not TaskSearch.of([("_total", "none")]).total
    assert TaskSearch.of([("_format", "json")]).query() == [("_format", "json")]


def test_an_unknown_search_parameter_is_refused_unless_lenient_which_leaves_it_out_of_the_self_link() -> None:
    assert _error(TaskSearch.of, [("stauts", "completed")]).status == 400
    lenient = TaskSearch.of([("stauts", "completed"), ("_elements", "id"), ("status", "received")], lenient=True)
    assert lenient.ignored == 2 and lenient.query() == [("status", "received")]
    assert lenient.statuses == {"received"}


@pytest.mark.parametrize(
    "bad",
    [
        [("status", "done")],
        [("_count", "-1")],
        [("_count", "101")],
        [("_lastUpdated", "sa2026-12-01")],  # a prefix not supported
        [("_lastUpdated", "gt2026-12-01T00:00:00")],  # no offset
        [("_lastUpdated", "2026-13-01")],
        [("_summary", "true")],
        [("_total", "all")],
        [("_id", "a b")],
        [("_cursor", "a;b")],
    ],
)
def test_a_search_parameter_the_facade_cannot_honour_is_a_400(bad: list[tuple[str, str]]) -> None:
    assert _error(TaskSearch.of, bad).status == 400


def test_a_cancellation_names_its_reason_as_a_code() -> None:
    assert cancel_reason(example("cancel")) == "pregnancy-ended"
    coding = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueCoding": {"system": codes.CANCEL_REASON_SYSTEM, "code": "other"}}],
    }
    assert cancel_reason(coding) == "other"
    assert _error(cancel_reason, {"resourceType": "Parameters"}).code == "required"
