"""Errors as FHIR OperationOutcome: the facade's own (a Bundle it cannot read) and the v1 APIs' problems it
passes on, each with the HTTP status of the error it maps and no personal data (v1 problems hold none; the
facade's diagnostics name elements, never their values)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import PROBLEM_PREFIX

# The v1 problem types and the FHIR issue type (http://hl7.org/fhir/issue-type) each is.
ISSUE_BY_SLUG = {
    "validation": "invalid",
    "unauthorized": "login",
    "forbidden": "forbidden",
    "consent-required": "forbidden",
    "not-found": "not-found",
    "conflict": "conflict",
    "idempotency-conflict": "duplicate",
    "unavailable": "transient",
    "method-not-allowed": "not-supported",
    "payload-too-large": "too-long",
    "unsupported-media-type": "not-supported",
    "too-many-requests": "throttled",
    "internal": "exception",
}


class FhirError(Exception):
    """An error the facade answers itself. `diagnostics` holds no personal data; `expression`: the FHIRPath
    of the element at fault."""

    def __init__(self, status: int, code: str, diagnostics: str, expression: str | None = None) -> None:
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics, self.expression = status, code, diagnostics, expression

    def outcome(self) -> dict[str, Any]:
        return operation_outcome([issue(self.code, self.diagnostics, self.expression)])


def invalid(diagnostics: str, expression: str | None = None, *, code: str = "invalid") -> FhirError:
    """422: the request is FHIR but not a melding, consent or cancellation the platform can take."""
    return FhirError(422, code, diagnostics, expression)


def issue(code: str, diagnostics: str, expression: str | None = None, *, details: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        out["expression"] = [expression]
    if details:
        out["details"] = {"coding": [{"system": "urn:kansrijk:problem", "code": details}]}
    return out


def operation_outcome(issues: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    from fhir.resources.R4B.operationoutcome import OperationOutcome  # at the first error: start-up is quicker

    resource = OperationOutcome.model_validate({"resourceType": "OperationOutcome", "issue": list(issues)})
    return resource.model_dump(mode="json")


def from_problem(problem: Mapping[str, Any], fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A v1 problem document (RFC 9457) as an OperationOutcome: one issue per invalid field (its FHIR element
    from `fields`, v1 field -> FHIRPath, where known), else one for the problem; the problem's type in
    `details` (e.g. `consent-required`), so that a client can tell them apart."""
    slug = str(problem.get("type", "")).removeprefix(PROBLEM_PREFIX) or "internal"
    code = ISSUE_BY_SLUG.get(slug, "exception")
    detail = str(problem.get("detail") or problem.get("title") or slug)
    errors = problem.get("errors") or []
    issues = []
    for error in errors:
        if not isinstance(error, Mapping):
            continue
        # a FHIR client knows the FHIR elements, not the v1 fields: name the element, or none
        element = _element(str(error.get("field", "")), fields or {})
        message = str(error.get("message", ""))
        issues.append(issue(code, f"{element}: {message}" if element else message, element, details=slug))
    if not issues:
        issues = [issue(code, detail, details=slug)]
    if problem.get("existing"):  # a repeated melding: the open one it repeats, as a Task
        task = "Task/" + str(problem["existing"]).rsplit("/", 1)[-1]
        issues[0]["diagnostics"] = issues[0]["diagnostics"].replace("see `existing`", task)
    return operation_outcome(issues)


def _element(field: str, fields: Mapping[str, str]) -> str | None:
    """The FHIR element of a v1 field: the longest v1 prefix known (`patient.address.postcode` before
    `patient.address`)."""
    known = [v1 for v1 in fields if field == v1 or field.startswith((f"{v1}.", f"{v1}["))]
    return fields[max(known, key=len)] if known else None
