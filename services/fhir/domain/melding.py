"""The melding in FHIR: a transaction Bundle (Patient, ServiceRequest, Observation, Task) in, the v1 melding
body out; the v1 melding back as the Task a sender follows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from services.fhir.domain import codes
from services.fhir.domain.consent import RECIPIENT_TYPES, RISK_DOMAINS, bsn_of, coded
from services.fhir.domain.formats import etag, with_version
from services.fhir.domain.outcome import invalid
from services.fhir.domain.resources import day_of, emit, instant, parse
from shared.contracts.vocabulary import DeliveryStatus

PRIORITY = {"routine": "regular", "urgent": "urgent"}
BUNDLE_TYPES = ("Patient", "ServiceRequest", "Observation", "Task")

# Where each v1 field of a melding lives in the Bundle: a v1 validation error names the FHIR element.
V1_FIELDS = {
    "consent_id": "ServiceRequest.extension",
    "patient.bsn": "Patient.identifier",
    "patient.name": "Patient.name",
    "patient.birth_date": "Patient.birthDate",
    "patient.address.postcode": "Patient.address.postalCode",
    "patient.address.house_number_suffix": "Patient.address.line.extension",
    "patient.address.house_number": "Patient.address.line.extension",
    "patient.address.city": "Patient.address.city",
    "patient.address": "Patient.address",
    "patient.phone": "Patient.telecom",
    "pregnancy.expected_due_date": "Observation.valueDateTime",
    "risk_domains": "ServiceRequest.reasonCode",
    "recipient_types": "ServiceRequest.performerType",
    "urgency": "ServiceRequest.priority",
    "note": "ServiceRequest.note",
    "contact": "ServiceRequest.requester",
}


# What the facade carries of each resource into the melding: any other element (a gender, a contact person,
# contained resources, an extension on a primitive) would be dropped without a word, so it is refused, and the
# sender knows the platform did not get it. `id`, `meta`, `text` and `language` say nothing of their own.
_ANY = frozenset({"resourceType", "id", "meta", "text", "language"})
CARRIED = {
    "Bundle": frozenset({"resourceType", "id", "meta", "type", "identifier", "timestamp", "entry"}),
    "Patient": _ANY | {"identifier", "name", "birthDate", "address", "telecom"},
    "Observation": _ANY | {"status", "code", "subject", "valueDateTime"},
    "ServiceRequest": _ANY
    | {
        "extension",
        "status",
        "intent",
        "code",
        "priority",
        "subject",
        "requester",
        "performerType",
        "reasonCode",
        "supportingInfo",
        "note",
    },
    "Task": _ANY | {"status", "intent", "focus"},
}
_ENTRY = frozenset({"fullUrl", "resource", "request"})
_ENTRY_REQUEST = frozenset({"method", "url"})


def _not_carried(expression: str) -> Exception:
    return invalid(
        f"{expression}: the melding does not carry this element, so it is refused rather than dropped",
        expression,
        code="not-supported",
    )


def _element_name(key: str) -> str:
    # `_birthDate` holds the extensions of `birthDate` (FHIR JSON): name the element FHIRPath knows.
    return f"{key[1:]}.extension" if key.startswith("_") else key


def _refuse_what_is_not_carried(data: dict[str, Any]) -> None:
    """Every element of the (already parsed, so FHIR-valid) Bundle the melding would not keep is a 422 naming
    it; parsing made sure each key is an element FHIR defines, so naming it repeats nothing of the sender's."""
    for key in data:
        if key not in CARRIED["Bundle"]:
            raise _not_carried(f"Bundle.{_element_name(key)}")
    for index, entry in enumerate(data.get("entry") or []):
        where = f"Bundle.entry[{index}]"
        for key in entry:
            if key not in _ENTRY:
                raise _not_carried(f"{where}.{_element_name(key)}")
        for key in entry.get("request") or {}:
            if key not in _ENTRY_REQUEST:
                raise _not_carried(f"{where}.request.{_element_name(key)}")
        resource = entry.get("resource") or {}
        kind = str(resource.get("resourceType"))
        for key in resource:
            if key not in CARRIED.get(kind, frozenset()):
                raise _not_carried(f"{kind}.{_element_name(key)}")


def _one(values: list[Any] | None, expression: str) -> Any:
    if values and len(values) > 1:
        raise invalid(f"{expression}: the melding carries one, not {len(values)}", expression, code="not-supported")
    return values[0] if values else None


@dataclass(frozen=True)
class MeldingRequest:
    """A transaction Bundle read: the v1 body, the idempotency key its `identifier` gives (if any), and the
    entries' order, for the transaction-response."""

    body: dict[str, Any]
    bundle_key: str | None
    entry_types: list[str]


def melding_request(data: Any) -> MeldingRequest:
    bundle = parse(data, "Bundle")
    _refuse_what_is_not_carried(data)
    if bundle.type != "transaction":
        raise invalid("the melding is a Bundle of type transaction", "Bundle.type", code="value")
    found: dict[str, tuple[str, Any]] = {}
    order: list[str] = []
    for index, entry in enumerate(bundle.entry or []):
        resource = entry.resource
        kind = resource.get_resource_type() if resource is not None else None
        where = f"Bundle.entry[{index}]"
        if kind not in BUNDLE_TYPES:
            raise invalid(f"{where}: a melding holds only {', '.join(BUNDLE_TYPES)}", where, code="not-supported")
        if kind in found:
            raise invalid(f"{where}: one {kind} per melding", where, code="structure")
        if entry.request is None or entry.request.method != "POST":
            raise invalid(f"{where}.request.method must be POST", f"{where}.request", code="value")
        if not entry.fullUrl:
            raise invalid(f"{where}.fullUrl is required: the entries refer to each other by it", where, code="required")
        found[kind] = (entry.fullUrl, resource)
        order.append(kind)
    if missing := [kind for kind in BUNDLE_TYPES if kind not in found]:
        raise invalid(f"the Bundle lacks {', '.join(missing)}", "Bundle.entry", code="required")
    patient_url, patient = found["Patient"]
    request_url, service_request = found["ServiceRequest"]
    observation_url, observation = found["Observation"]
    _, task = found["Task"]
    body = {
        **_service_request(service_request, patient_url=patient_url, observation_url=observation_url),
        "patient": _patient(patient),
        "pregnancy": {"expected_due_date": _due_date(observation)},
    }
    _task(task, request_url)
    return MeldingRequest(body, _bundle_key(bundle.identifier), order)


def _bundle_key(identifier: Any) -> str | None:
    """An Idempotency-Key from the Bundle's identifier: the same Bundle sent twice makes one melding."""
    if identifier is None or not identifier.value:
        return None
    digest = hashlib.sha256(f"{identifier.system or ''}|{identifier.value}".encode()).hexdigest()
    return f"fhir-bundle-{digest}"


def _patient(patient: Any) -> dict[str, Any]:
    # one identifier, her BSN: a second one (another BSN above all) would be dropped, or pick the wrong woman
    out: dict[str, Any] = {"bsn": bsn_of(_one(patient.identifier, "Patient.identifier"), "Patient.identifier")}
    name = _one(patient.name, "Patient.name")
    given = [g for g in (name.given if name is not None else None) or [] if g]  # `null` where `_given` says more
    if name is None or not name.family or not given:
        raise invalid("Patient.name needs a family name and a given name", "Patient.name", code="required")
    out["name"] = {"given": " ".join(given), "family": name.family}
    out["birth_date"] = day_of(patient.birthDate, "Patient.birthDate").isoformat()
    out["address"] = _address(_one(patient.address, "Patient.address"))
    phone = _one(patient.telecom, "Patient.telecom")
    if phone is not None:
        if phone.system != "phone" or not phone.value:
            raise invalid("Patient.telecom is her phone number (system phone)", "Patient.telecom", code="not-supported")
        out["phone"] = phone.value
    return out


def _address(address: Any) -> dict[str, Any]:
    if address is None or not address.postalCode:
        raise invalid("Patient.address needs a postalCode", "Patient.address", code="required")
    parts: dict[str, str] = {}
    for extensions in address.line__ext or []:
        for extension in (extensions.extension if extensions else None) or []:
            if extension.url == codes.HOUSE_NUMBER_EXTENSION and extension.valueString:
                parts.setdefault("house_number", extension.valueString)
            elif extension.url == codes.HOUSE_NUMBER_SUFFIX_EXTENSION and extension.valueString:
                parts.setdefault("house_number_suffix", extension.valueString)
    if "house_number" not in parts:
        raise invalid(
            f"Patient.address.line needs the house number as the extension {codes.HOUSE_NUMBER_EXTENSION} (nl-core)",
            "Patient.address.line",
            code="required",
        )
    out: dict[str, Any] = {"postcode": address.postalCode, **parts}
    if address.city:
        out["city"] = address.city
    return out


def _due_date(observation: Any) -> str:
    coding = (observation.code.coding if observation.code else None) or []
    if not any(c.system == codes.LOINC and c.code == codes.ESTIMATED_DELIVERY_DATE for c in coding):
        raise invalid(
            f"Observation.code must be LOINC {codes.ESTIMATED_DELIVERY_DATE} (Delivery date Estimated)",
            "Observation.code",
            code="value",
        )
    return day_of(observation.valueDateTime, "Observation.valueDateTime").isoformat()


def _service_request(request: Any, *, patient_url: str, observation_url: str) -> dict[str, Any]:
    if request.status != "active" or request.intent != "order":
        raise invalid("ServiceRequest.status is active and intent is order", "ServiceRequest.status", code="value")
    if not any(
        c.system == codes.MELDING_SYSTEM and c.code == codes.MELDING_CODE
        for c in (request.code.coding if request.code else None) or []
    ):
        raise invalid(
            f"ServiceRequest.code must be {codes.MELDING_SYSTEM}|{codes.MELDING_CODE}",
            "ServiceRequest.code",
            code="value",
        )
    if request.subject is None or request.subject.reference != patient_url:
        raise invalid(
            "ServiceRequest.subject must refer to the Patient's fullUrl", "ServiceRequest.subject", code="value"
        )
    if observation_url not in [r.reference for r in request.supportingInfo or []]:
        raise invalid(
            "ServiceRequest.supportingInfo must refer to the Observation's fullUrl",
            "ServiceRequest.supportingInfo",
            code="value",
        )
    consents = [
        e.valueReference.reference
        for e in request.extension or []
        if e.url == codes.CONSENT_EXTENSION and e.valueReference is not None and e.valueReference.reference
    ]
    if len(consents) != 1 or not consents[0].startswith("Consent/"):
        raise invalid(
            f"one extension {codes.CONSENT_EXTENSION} with valueReference Consent/{{id}}",
            "ServiceRequest.extension",
            code="required",
        )
    if request.priority not in (None, *PRIORITY):
        raise invalid("ServiceRequest.priority is routine or urgent", "ServiceRequest.priority", code="value")
    body: dict[str, Any] = {
        "consent_id": consents[0].removeprefix("Consent/"),
        "risk_domains": [
            code
            for concept in request.reasonCode or []
            for code in coded(concept.coding, codes.RISK_DOMAIN_SYSTEM, RISK_DOMAINS, "ServiceRequest.reasonCode")
        ],
        "recipient_types": coded(
            request.performerType.coding if request.performerType else None,
            codes.RECIPIENT_TYPE_SYSTEM,
            RECIPIENT_TYPES,
            "ServiceRequest.performerType",
        ),
        "urgency": PRIORITY[request.priority or "routine"],
    }
    notes = [n.text for n in request.note or [] if n.text]
    if notes:
        body["note"] = "\n\n".join(notes)
    if request.requester is not None and request.requester.display:
        body["contact"] = {"name": request.requester.display}
    return body


def _task(task: Any, request_url: str) -> None:
    if task.status != "requested" or task.intent != "order":
        raise invalid("Task.status is requested and intent is order", "Task.status", code="value")
    if task.focus is None or task.focus.reference != request_url:
        raise invalid("Task.focus must refer to the ServiceRequest's fullUrl", "Task.focus", code="value")


def transaction_response(accepted: dict[str, Any], entry_types: list[str]) -> dict[str, Any]:
    """The answer to the transaction: the ServiceRequest's and the Task's ids (both the melding's id), each with
    its version (`etag`) and `lastModified`. The Patient and the Observation live on in the melding only (no
    resource of their own to read: `200`, no location). A retry answers as the first request did (201): the
    melding is the one that request made."""
    made = {"ServiceRequest": service_request_resource(accepted), "Task": task_resource(accepted)}
    entries = []
    for kind in entry_types:
        response: dict[str, Any] = {"status": "200 OK"}
        if resource := made.get(kind):
            response = {
                "status": "201 Created",
                "location": f"{kind}/{resource['id']}",
                "etag": etag(resource),
                "lastModified": resource["meta"]["lastUpdated"],
            }
        entries.append({"response": response})
    return emit({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})


# --- the melding as a Task -----------------------------------------------------------------------------------

_ENDED = {DeliveryStatus.retracted}


def task_status(melding: dict[str, Any]) -> str:
    """The Task's status for a v1 melding (docs/fhir.md): requested, received, in-progress, completed,
    rejected or cancelled."""
    status = melding["status"]
    if status in ("withdrawn", "cancelled"):
        return "cancelled"
    if status in ("unroutable", "not_delivered"):
        return "rejected"
    if status == "accepted":
        return "requested"
    live = [DeliveryStatus(d["status"]) for d in melding["deliveries"] if d["status"] not in _ENDED]
    kept = [s for s in live if s is not DeliveryStatus.returned]
    if live and not kept:
        return "rejected"  # every recipient sent it back
    if kept and all(s is DeliveryStatus.closed for s in kept):
        return "completed"
    if any(s in (DeliveryStatus.contact_made, DeliveryStatus.closed) for s in kept):
        return "in-progress"
    return "received"


def _status_reason(melding: dict[str, Any], status: str) -> str | None:
    if status == "cancelled":
        return "consent withdrawn" if melding["status"] == "withdrawn" else "cancelled by the sender"
    if status == "rejected":
        if melding["status"] == "unroutable":
            return "no recipient serves the patient's address yet"
        if melding["status"] == "not_delivered":
            return f"not delivered: {melding.get('not_delivered_reason') or 'no recipient'}"
        return "returned by every recipient"
    return None


def _output(delivery: dict[str, Any]) -> dict[str, Any]:
    output: dict[str, Any] = {
        "id": delivery["delivery_id"],
        "type": {"coding": [{"system": codes.DELIVERY_STATUS_SYSTEM, "code": delivery["status"]}]},
        "valueReference": {
            "identifier": codes.organisation_identifier(delivery["org_id"]),
            "display": delivery["org_name"],
        },
    }
    if delivery.get("outcome"):
        output["extension"] = [{"url": codes.OUTCOME_EXTENSION, "valueCode": delivery["outcome"]}]
    return output


def task_resource(melding: dict[str, Any]) -> dict[str, Any]:
    """A v1 melding (`MeldingRead`) as the Task a sender follows: its status, and one output per delivery
    (the recipient organisation by URA, the delivery's status, its outcome)."""
    status = task_status(melding)
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": melding["id"],
        "meta": {"lastUpdated": instant(melding["updated_at"])},
        "status": status,
        "businessStatus": {"coding": [{"system": codes.MELDING_STATUS_SYSTEM, "code": melding["status"]}]},
        "intent": "order",
        "code": {"coding": [{"system": codes.MELDING_SYSTEM, "code": codes.MELDING_CODE}]},
        "focus": {"reference": f"ServiceRequest/{melding['id']}"},
        "authoredOn": instant(melding["created_at"]),
        "lastModified": instant(melding["updated_at"]),
        "requester": {"identifier": codes.organisation_identifier(melding["sender"]["org_id"])},
        "output": [_output(d) for d in melding["deliveries"]] or None,
    }
    if reason := _status_reason(melding, status):
        task["statusReason"] = {"text": reason}
    return with_version(emit({k: v for k, v in task.items() if v is not None}))


# A ServiceRequest's status for each Task status: what is still to be done is active; what ended without
# being done (cancelled, withdrawn, refused or returned by every recipient) is revoked.
_REQUEST_STATUS = {
    "requested": "active",
    "received": "active",
    "in-progress": "active",
    "completed": "completed",
    "rejected": "revoked",
    "cancelled": "revoked",
}
_PRIORITY_OF = {v1: fhir for fhir, v1 in PRIORITY.items()}


def service_request_resource(melding: dict[str, Any]) -> dict[str, Any]:
    """A v1 melding (`MeldingRead`) as the ServiceRequest the transaction made: what was asked, of whom, for
    whom (the patient by BSN, until her personal data is removed), under which consent."""
    patient = melding.get("patient")
    subject = (
        {"identifier": {"system": codes.BSN_SYSTEM, "value": patient["bsn"]}}
        if patient
        else {"display": "the patient (personal data removed)"}
    )
    requester: dict[str, Any] = {"identifier": codes.organisation_identifier(melding["sender"]["org_id"])}
    if melding.get("contact") and melding["contact"].get("name"):
        requester["display"] = melding["contact"]["name"]
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": melding["id"],
        "meta": {"lastUpdated": instant(melding["updated_at"])},
        "extension": [
            {"url": codes.CONSENT_EXTENSION, "valueReference": {"reference": f"Consent/{melding['consent_id']}"}}
        ],
        "status": _REQUEST_STATUS[task_status(melding)],
        "intent": "order",
        "code": {"coding": [{"system": codes.MELDING_SYSTEM, "code": codes.MELDING_CODE}]},
        "priority": _PRIORITY_OF.get(melding["urgency"], "routine"),
        "subject": subject,
        "authoredOn": instant(melding["created_at"]),
        "requester": requester,
        "performerType": {
            "coding": [{"system": codes.RECIPIENT_TYPE_SYSTEM, "code": t} for t in melding["recipient_types"]]
        },
        "reasonCode": [{"coding": [{"system": codes.RISK_DOMAIN_SYSTEM, "code": d}]} for d in melding["risk_domains"]]
        or None,
        "note": [{"text": melding["note"]}] if melding.get("note") else None,
    }
    return with_version(emit({k: v for k, v in request.items() if v is not None}))


def cancel_reason(data: Any) -> str:
    """The `reason` of a `$cancel` Parameters (valueCode, or valueCoding in urn:kansrijk:cancel-reason)."""
    parameters = parse(data, "Parameters")
    for parameter in parameters.parameter or []:
        if parameter.name != "reason":
            continue
        if parameter.valueCode:
            return str(parameter.valueCode)
        coding = parameter.valueCoding
        if coding is not None and coding.system == codes.CANCEL_REASON_SYSTEM and coding.code:
            return str(coding.code)
    raise invalid(
        f"a parameter reason with valueCode (or a valueCoding of {codes.CANCEL_REASON_SYSTEM})",
        "Parameters.parameter",
        code="required",
    )
