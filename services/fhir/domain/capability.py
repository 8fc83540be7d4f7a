"""`GET /fhir/metadata`: what the facade supports, exactly (a vendor's client reads it to know)."""

from __future__ import annotations

from typing import Any

from services.fhir.domain import codes
from services.fhir.domain.resources import emit

SOFTWARE_VERSION = "1.2.0"
# Reads answer the version as `meta.versionId` and a weak ETag; only the current version is kept (vread of it).
_VERSIONED = {"versioning": "versioned", "readHistory": False}


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
            "format": ["json", codes.FHIR_JSON],
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
                                {"code": "vread"},
                                {"code": "update"},
                                {"code": "search-type"},
                            ],
                            **_VERSIONED,
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
                            "type": "ServiceRequest",
                            "interaction": [{"code": "read"}, {"code": "vread"}],
                            **_VERSIONED,
                            "documentation": "the melding as the transaction made it (its id is the Task's); "
                            "created only by the transaction",
                        },
                        {
                            "type": "Task",
                            "interaction": [{"code": "read"}, {"code": "vread"}, {"code": "search-type"}],
                            **_VERSIONED,
                            "documentation": "unknown search parameters are a 400 unless Prefer: handling=lenient",
                            "searchParam": [
                                {"name": "status", "type": "token"},
                                {
                                    "name": "_lastUpdated",
                                    "type": "date",
                                    "documentation": "eq (the default), gt, ge, lt, le; a date is a day in the "
                                    "Netherlands",
                                },
                                {"name": "_id", "type": "token"},
                                {"name": "_count", "type": "number", "documentation": "1 to 100 (0: the total only)"},
                                {"name": "_summary", "type": "token", "documentation": "count"},
                                {"name": "_total", "type": "token", "documentation": "none, estimate, accurate"},
                                {
                                    "name": "requester",
                                    "type": "reference",
                                    "documentation": "requester:identifier=<system>|<your organisation> "
                                    "(a Subscription's criteria); you only ever see your own Tasks",
                                },
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
