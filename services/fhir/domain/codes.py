"""The code systems and naming systems the FHIR facade speaks (docs/fhir.md lists them for vendors).

The platform's own vocabularies (shared.contracts.vocabulary) get `urn:kansrijk:` systems; patients and
organisations are named as the Dutch NamingSystems do (nl-core, Twiin, Mitz).
"""

from __future__ import annotations

from shared.identifiers import BSN_SYSTEM

FHIR_VERSION = "4.0.1"
FHIR_JSON = "application/fhir+json"

URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
ORGANISATION_SYSTEM = "urn:kansrijk:organisation"  # an organisation without a URA (a wijkteam): its platform id
RISK_DOMAIN_SYSTEM = "urn:kansrijk:risk-domain"
RECIPIENT_TYPE_SYSTEM = "urn:kansrijk:recipient-type"
MELDING_SYSTEM = "urn:kansrijk:melding"
MELDING_CODE = "kansrijke-start-melding"
CANCEL_REASON_SYSTEM = "urn:kansrijk:cancel-reason"
DELIVERY_STATUS_SYSTEM = "urn:kansrijk:delivery-status"
MELDING_STATUS_SYSTEM = "urn:kansrijk:melding-status"

# Extensions (their url is their identity, as FHIR wants).
CONSENT_EXTENSION = "urn:kansrijk:consent"  # ServiceRequest -> the Consent it is sent under
CONSENT_METHOD_EXTENSION = "urn:kansrijk:consent-method"  # verbal | written
INFORMED_ABOUT_EXTENSION = "urn:kansrijk:informed-about"  # what the professional explained (repeats)
OUTCOME_EXTENSION = "urn:kansrijk:outcome"  # Task.output: what came of a closed delivery
HOUSE_NUMBER_EXTENSION = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-houseNumber"
HOUSE_NUMBER_SUFFIX_EXTENSION = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-buildingNumberSuffix"

LOINC = "http://loinc.org"
PRIVACY_CONSENT = "59284-0"  # LOINC "Patient Consent"
ESTIMATED_DELIVERY_DATE = "11778-8"  # LOINC "Delivery date Estimated"
CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

__all__ = ["BSN_SYSTEM"]


def organisation_identifier(org_id: str) -> dict[str, str]:
    """An organisation by its URA (8 digits), or by its platform id when it has none (some wijkteams)."""
    system = URA_SYSTEM if len(org_id) == 8 and org_id.isdigit() else ORGANISATION_SYSTEM
    return {"system": system, "value": org_id}
