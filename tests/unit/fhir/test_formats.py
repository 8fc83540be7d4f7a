"""What a FHIR client asks of an answer beside the resource: its format, what to return, its version."""

from __future__ import annotations

import pytest

from services.fhir.domain.formats import Preferences, check_format, etag, preferences, with_version
from services.fhir.domain.outcome import FhirError


@pytest.mark.parametrize(
    ("format_parameter", "accept"),
    [
        (None, None),
        (None, ""),
        ("json", "application/fhir+xml"),  # _format overrides Accept
        ("application/json", None),
        ("application/fhir+json;fhirVersion=4.0", None),
        (None, "application/fhir+json"),
        (None, "application/fhir+xml;q=0.9, application/json"),
        (None, "text/html, */*;q=0.8"),
    ],
)
def test_json_asked_for_or_acceptable_is_answered(format_parameter: str | None, accept: str | None) -> None:
    check_format(format_parameter, accept)


@pytest.mark.parametrize(
    ("format_parameter", "accept"),
    [
        ("xml", None),
        ("application/fhir+xml", "application/fhir+json"),
        ("text/turtle", None),
        (None, "application/fhir+xml"),
        (None, "application/xml, text/xml"),
        (None, "application/fhir+json;q=0"),
    ],
)
def test_xml_or_anything_but_json_is_not_acceptable(format_parameter: str | None, accept: str | None) -> None:
    with pytest.raises(FhirError) as raised:
        check_format(format_parameter, accept)
    assert raised.value.status == 406


def test_prefer_return_and_handling_are_read_and_the_rest_ignored() -> None:
    assert preferences(None) == Preferences("representation", lenient=False)
    assert preferences("return=minimal") == Preferences("minimal", lenient=False)
    assert preferences('return="OperationOutcome", handling=lenient') == Preferences("OperationOutcome", lenient=True)
    assert preferences("handling=lenient; respond-async") == Preferences("representation", lenient=True)
    assert preferences("return=everything, handling=sloppy") == Preferences()


def test_the_version_changes_with_the_resource_and_only_then() -> None:
    task = {"resourceType": "Task", "id": "t", "meta": {"lastUpdated": "2026-12-07T10:00:00Z"}, "status": "requested"}
    first = with_version(task)
    assert first["meta"]["lastUpdated"] == "2026-12-07T10:00:00Z" and len(first["meta"]["versionId"]) == 16
    assert with_version(first) == first  # a versioned resource versioned again: the same version
    moved = with_version({**task, "status": "received"})
    assert moved["meta"]["versionId"] != first["meta"]["versionId"]
    assert etag(first) == f'W/"{first["meta"]["versionId"]}"'
