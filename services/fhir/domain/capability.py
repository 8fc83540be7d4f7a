"""`GET /fhir/metadata`: what the facade supports, exactly (a vendor's client reads it to know)."""

from __future__ import annotations

from typing import Any

from services.fhir.domain import codes
from services.fhir.domain.resources import emit

SOFTWARE_VERSION = "1.1.0"


def capability_statement(base_url: str, published: str) -> dict[str, Any]:
    return emit(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": published,
            "publisher": "Kansrijke Start meldingen",
            "kind": "instance",
            "software": {"name": "kansrijk-fhir", "version": SOFTWARE_VERSION},
            "implementation": {"description": "Kansrijke Start meldingen: FHIR R4 facade", "url": base_url},
            "fhirVersion": codes.FHIR_VERSION,
            "format": ["json"],
            "rest": [
                {
                    "mode": "server",
                    "documentation": "Bearer tokens as for the v1 APIs (scopes consent:write, consent:read, "
                    "melding:write, melding:read); a BSN never travels in a URL: search Consent with POST "
                    "Consent/_search. See docs/fhir.md.",
                    "security": {
                        "service": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                        "code": "OAuth",
                                    }
                                ]
                            }
                        ]
                    },
                    "resource": [
                        {
                            "type": "Consent",
                            "interaction": [
                                {"code": "create"},
                                {"code": "read"},
                                {"code": "update"},
                                {"code": "search-type"},
                            ],
                            "updateCreate": False,
                            "searchParam": [
                                {
                                    "name": "patient:identifier",
                                    "type": "token",
                                    "documentation": f"{codes.BSN_SYSTEM}|<BSN>, only with POST Consent/_search",
                                }
                            ],
                        },
                        {
                            "type": "Task",
                            "interaction": [{"code": "read"}, {"code": "search-type"}],
                            "searchParam": [
                                {"name": "status", "type": "token"},
                                {"name": "_lastUpdated", "type": "date"},
                                {
                                    "name": "requester",
                                    "type": "reference",
                                    "documentation": "requester:identifier=<system>|<your organisation> "
                                    "(a Subscription's criteria); you only ever see your own Tasks",
                                },
                                {"name": "_count", "type": "number"},
                            ],
                            "operation": [
                                {
                                    "name": "cancel",
                                    "definition": "urn:kansrijk:operation:task-cancel",
                                    "documentation": "Parameters with reason (urn:kansrijk:cancel-reason)",
                                }
                            ],
                        },
                        {
                            "type": "Subscription",
                            "supportedProfile": [
                                "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"
                            ],
                            "interaction": [{"code": "create"}, {"code": "read"}, {"code": "delete"}],
                            "operation": [
                                {
                                    "name": "status",
                                    "definition": "http://hl7.org/fhir/uv/subscriptions-backport/"
                                    "OperationDefinition/backport-subscription-status",
                                    "documentation": "GET Subscription/{id}/$status (instance level only)",
                                }
                            ],
                            "documentation": "rest-hook, id-only: criteria "
                            "Task?requester:identifier=<system>|<your organisation>; every status change of "
                            "your Tasks is POSTed to the endpoint (public https), retried for 24 h; heartbeats "
                            "with the backport-heartbeat-period extension; a shortest heartbeat period and a "
                            "limit of Subscriptions per organisation apply. See docs/fhir.md.",
                        },
                    ],
                    "interaction": [
                        {
                            "code": "transaction",
                            "documentation": "a melding: Patient, ServiceRequest, Observation (due date) and Task",
                        }
                    ],
                }
            ],
        }
    )
