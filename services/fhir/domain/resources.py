"""Reading and writing FHIR resources through fhir.resources' models: what comes in is parsed (an unknown
element is an error, not silently dropped), what goes out is built and validated by the same models.

fhir.resources ships R4B (4.3.0) models, not R4 (4.0.1) ones, for pydantic 2: the resources the facade
speaks (Consent, Bundle, Patient, ServiceRequest, Observation, Task, Parameters, OperationOutcome,
CapabilityStatement) are the same in both.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from services.fhir.domain.outcome import FhirError, invalid
from shared.clock import NL, as_utc_instant

if TYPE_CHECKING:
    from fhir_core.fhirabstractmodel import FHIRAbstractModel


def _model(resource_type: str) -> type[FHIRAbstractModel]:
    """fhir.resources' model of a resource type. The package is imported at the first resource read or
    written, not with the service: it is a tenth of a second of the facade's start-up (docs/performance.md)."""
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def parse(data: Any, resource_type: str) -> Any:
    """`data` as the FHIR resource `resource_type`, or a 422 naming the elements at fault (never their values)."""
    if not isinstance(data, dict):
        raise invalid(f"the body must be a FHIR {resource_type} resource (JSON object)", code="structure")
    if data.get("resourceType") != resource_type:
        raise invalid(f"expected resourceType {resource_type}", f"{resource_type}.resourceType", code="structure")
    try:
        return _model(resource_type).model_validate(data)
    except ValidationError as exc:
        raise _structure_error(resource_type, exc) from None
    except (TypeError, ValueError, KeyError, AttributeError):
        # fhir.resources' own validators let some malformed input (a list where a resource is expected)
        # through as a plain exception, not a ValidationError: malformed all the same.
        raise invalid(
            f"the body is not a FHIR {resource_type} the facade can read", resource_type, code="structure"
        ) from None


def _structure_error(resource_type: str, exc: ValidationError) -> FhirError:
    """The first error, at its position (`Bundle.entry[0].resource`): an unknown element is named by where it
    is, never by its key — a client's key may hold anything, a BSN or a name."""
    first = exc.errors(include_input=False, include_url=False)[0]
    unknown = first["type"] == "extra_forbidden"
    loc = list(first["loc"])[:-1] if unknown else list(first["loc"])
    path = resource_type + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    what = "holds an element FHIR R4 does not define there" if unknown else first["msg"]
    return invalid(f"{path}: {what}", path, code="structure")


def emit(data: dict[str, Any]) -> dict[str, Any]:
    """A resource the facade sends, validated by its model and in its JSON form."""
    resource = _model(data["resourceType"]).model_validate(data)
    return resource.model_dump(mode="json")


def day_of(value: date | datetime | str | None, expression: str) -> date:
    """A FHIR date or dateTime as the day it is in the Netherlands; 422 for one outside the supported years
    (at the calendar's edge, `0001-01-01T00:00:00+14:00`, moving it to UTC would overflow)."""
    try:
        if isinstance(value, datetime):
            return as_utc_instant(value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(NL).date()
        if isinstance(value, date):
            return as_utc_instant(datetime(value.year, value.month, value.day, tzinfo=UTC)).date()
    except ValueError as exc:
        raise invalid(f"{expression} {exc}", expression, code="value") from None
    raise invalid(f"{expression} is required (a date)", expression, code="required")


def instant(value: str | datetime) -> str:
    """A v1 timestamp as a FHIR instant (UTC, `Z`)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
