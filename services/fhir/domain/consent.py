"""FHIR Consent <-> the consent service's v1 consent.

In: `status` active, `scope` patient-privacy, `category` LOINC 59284-0, the patient by BSN, `dateTime` the day
it was given, `provision.period.end` the last day it holds, `provision.actor[].role` the recipient types,
`provision.code` the risk domains it allows (absent: all), the method and what the patient was told in
extensions. Out: the same, plus `organization` (who recorded it) and `status` inactive once withdrawn or
expired.
"""

from __future__ import annotations

from typing import Any, get_args

from services.fhir.domain import codes
from services.fhir.domain.formats import with_version
from services.fhir.domain.outcome import invalid
from services.fhir.domain.resources import day_of, emit, instant, parse
from shared.contracts.vocabulary import InformedAbout, RecipientType, RiskDomain

RISK_DOMAINS = frozenset(get_args(RiskDomain))
RECIPIENT_TYPES = frozenset(get_args(RecipientType))
INFORMED_ABOUT = frozenset(get_args(InformedAbout))
METHODS = frozenset({"verbal", "written"})
ROLE_DISPLAY = {"jgz": "jeugdgezondheidszorg", "wijkteam": "wijkteam"}
# Where each v1 field of a consent lives in the Consent: a v1 validation error names the FHIR element.
V1_FIELDS = {
    "patient.bsn": "Consent.patient.identifier",
    "patient": "Consent.patient",
    "recipient_types": "Consent.provision.actor.role",
    "risk_domains": "Consent.provision.code",
    "given_at": "Consent.dateTime",
    "valid_until": "Consent.provision.period.end",
    "method": "Consent.extension",
    "informed_about": "Consent.extension",
}


def coded(codings: list[Any] | None, system: str, allowed: frozenset[str], expression: str) -> list[str]:
    """The codes of `system` among `codings`; a coding of another system, or a code the system does not
    have, is a 422 (it would otherwise be dropped without a word)."""
    out: list[str] = []
    for coding in codings or []:
        if coding.system != system:
            raise invalid(f"{expression}: only codes of {system} are understood here", expression, code="code-invalid")
        if coding.code not in allowed:
            raise invalid(f"{expression}: not a code of {system}", expression, code="code-invalid")
        out.append(coding.code)
    return out


def _has(codeable: Any, system: str, code: str) -> bool:
    return any(c.system == system and c.code == code for c in (codeable.coding or [])) if codeable else False


def bsn_of(identifier: Any, expression: str) -> str:
    if identifier is None or identifier.system != codes.BSN_SYSTEM or not identifier.value:
        raise invalid(f"{expression} must be a BSN ({codes.BSN_SYSTEM})", expression, code="required")
    return str(identifier.value)


def extension_codes(extensions: list[Any] | None, url: str) -> list[str]:
    return [str(e.valueCode) for e in extensions or [] if e.url == url and e.valueCode is not None]


def consent_create(data: Any) -> dict[str, Any]:
    """A FHIR Consent to record, as the body of `POST /v1/consents`."""
    consent = parse(data, "Consent")
    if consent.status != "active":
        raise invalid("a new Consent has status active", "Consent.status", code="value")
    if not _has(consent.scope, codes.CONSENT_SCOPE_SYSTEM, "patient-privacy"):
        raise invalid("Consent.scope must be patient-privacy", "Consent.scope", code="value")
    if not any(_has(c, codes.LOINC, codes.PRIVACY_CONSENT) for c in consent.category or []):
        raise invalid(f"Consent.category must hold LOINC {codes.PRIVACY_CONSENT}", "Consent.category", code="value")
    if consent.patient is None:
        raise invalid("Consent.patient is required", "Consent.patient", code="required")
    provision = consent.provision
    if provision is None:
        raise invalid("Consent.provision is required", "Consent.provision", code="required")
    if provision.type not in (None, "permit"):
        raise invalid("Consent.provision.type must be permit", "Consent.provision.type", code="value")
    types: list[str] = []
    for actor in provision.actor or []:
        if actor.role is None:  # required by FHIR; fhir.resources' models leave that to the reader
            raise invalid("Consent.provision.actor.role is required", "Consent.provision.actor.role", code="required")
        types += coded(actor.role.coding, codes.RECIPIENT_TYPE_SYSTEM, RECIPIENT_TYPES, "Consent.provision.actor.role")
    methods = extension_codes(consent.extension, codes.CONSENT_METHOD_EXTENSION)
    if len(methods) != 1 or methods[0] not in METHODS:
        raise invalid(
            f"one extension {codes.CONSENT_METHOD_EXTENSION} with valueCode verbal or written",
            "Consent.extension",
            code="required",
        )
    informed = extension_codes(consent.extension, codes.INFORMED_ABOUT_EXTENSION)
    if unknown := [c for c in informed if c not in INFORMED_ABOUT]:
        raise invalid(f"{len(unknown)} unknown informed-about code(s)", "Consent.extension", code="code-invalid")
    body: dict[str, Any] = {
        "patient": {"bsn": bsn_of(consent.patient.identifier, "Consent.patient.identifier")},
        "recipient_types": types,
        "method": methods[0],
        "given_at": day_of(consent.dateTime, "Consent.dateTime").isoformat(),
        "informed_about": informed,
    }
    if provision.period is not None and provision.period.end is not None:
        body["valid_until"] = day_of(provision.period.end, "Consent.provision.period.end").isoformat()
    if provision.code:
        body["risk_domains"] = [
            code
            for concept in provision.code
            for code in coded(concept.coding, codes.RISK_DOMAIN_SYSTEM, RISK_DOMAINS, "Consent.provision.code")
        ]
    return body


def is_withdrawal(data: Any, consent_id: str) -> bool:
    """A PUT of a Consent: True if it withdraws it (status inactive); a PUT that changes anything else is
    refused — a consent is recorded once, and only withdrawn after."""
    consent = parse(data, "Consent")
    if consent.id is not None and consent.id != consent_id:
        raise invalid("Consent.id must be the id in the URL", "Consent.id", code="value")
    if consent.status == "inactive":
        return True
    raise invalid("a Consent can only be withdrawn: PUT it with status inactive", "Consent.status", code="value")


def consent_resource(v1: dict[str, Any]) -> dict[str, Any]:
    """The consent service's consent (`ConsentRead`) as a FHIR Consent."""
    extensions = [{"url": codes.CONSENT_METHOD_EXTENSION, "valueCode": v1["method"]}] + [
        {"url": codes.INFORMED_ABOUT_EXTENSION, "valueCode": code} for code in v1.get("informed_about") or []
    ]
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": v1["given_at"], "end": v1["valid_until"]},
        "actor": [
            {
                "role": {"coding": [{"system": codes.RECIPIENT_TYPE_SYSTEM, "code": t}]},
                "reference": {"display": ROLE_DISPLAY.get(t, t)},
            }
            for t in v1["recipient_types"]
        ],
    }
    if v1.get("risk_domains") is not None:
        provision["code"] = [{"coding": [{"system": codes.RISK_DOMAIN_SYSTEM, "code": d}]} for d in v1["risk_domains"]]
    return with_version(
        emit(
            {
                "resourceType": "Consent",
                "id": v1["id"],
                "meta": {"lastUpdated": instant(v1.get("withdrawn_at") or v1["created_at"])},
                "extension": extensions,
                "status": "active" if v1["status"] == "active" else "inactive",
                "scope": {"coding": [{"system": codes.CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": codes.LOINC, "code": codes.PRIVACY_CONSENT}]}],
                "patient": {"identifier": {"system": codes.BSN_SYSTEM, "value": v1["patient"]["bsn"]}},
                "dateTime": v1["given_at"],
                "organization": [{"identifier": codes.organisation_identifier(v1["recorded_by"]["org_id"])}],
                "policyRule": {"coding": [{"system": codes.ACT_CODE_SYSTEM, "code": "OPTIN"}]},
                "provision": provision,
            }
        )
    )
