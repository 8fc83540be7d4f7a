"""What a FHIR client asks of an answer beside the resource itself (R4 "RESTful API"): its format (`_format`,
`Accept`), what to return and how to handle what the server does not know (`Prefer`), and the version the
resource is at (`meta.versionId`, the `ETag`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from services.fhir.domain.outcome import FhirError

JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})
_JSON_RANGES = JSON_FORMATS | {"*/*", "application/*"}
RETURNS = ("minimal", "representation", "OperationOutcome")


def check_format(format_parameter: str | None, accept: str | None) -> None:
    """The facade answers FHIR JSON only: `_format` (which overrides `Accept`) or `Accept` asking for anything
    else — XML above all — is a 406 rather than JSON the client did not ask for."""
    if format_parameter is not None:
        if _media_type(format_parameter) not in JSON_FORMATS:
            raise _not_acceptable()
        return
    if not accept or not accept.strip():
        return
    for media_range in accept.split(","):
        kind, _, parameters = media_range.partition(";")
        if _media_type(kind) in _JSON_RANGES and _quality(parameters) > 0:
            return
    raise _not_acceptable()


def _media_type(text: str) -> str:
    return text.split(";")[0].strip().lower()


def _quality(parameters: str) -> float:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def _not_acceptable() -> FhirError:
    return FhirError(
        406, "not-supported", "this server answers FHIR JSON only: _format=json or Accept: application/fhir+json"
    )


@dataclass(frozen=True)
class Preferences:
    """`Prefer` as FHIR uses it: `return` (minimal, representation, OperationOutcome) on create and update,
    `handling` (strict, lenient) on search."""

    returns: str = "representation"
    lenient: bool = False


def preferences(header: str | None) -> Preferences:
    """The `Prefer` header's preferences the facade honours; others (and unknown values) are ignored, as
    RFC 7240 has it."""
    returns, lenient = "representation", False
    for preference in (header or "").replace(";", ",").split(","):
        name, _, value = preference.partition("=")
        name, value = name.strip().lower(), value.strip().strip('"')
        if name == "return" and value in RETURNS:
            returns = value
        elif name == "handling" and value in ("strict", "lenient"):
            lenient = value == "lenient"
    return Preferences(returns, lenient)


def with_version(resource: dict[str, Any]) -> dict[str, Any]:
    """`resource` with `meta.versionId`: a digest of what it says, so that it changes whenever the resource
    does (the v1 APIs keep no version number) and a client can tell a changed resource by its `ETag`."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k != "versionId"}
    content = {**resource, "meta": meta}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return {**resource, "meta": {**meta, "versionId": digest[:16]}}


def etag(resource: dict[str, Any]) -> str:
    """The weak ETag FHIR asks for: `W/"<versionId>"`."""
    return f'W/"{resource["meta"]["versionId"]}"'
