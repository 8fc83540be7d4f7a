"""Problem details (RFC 9457) for every error, and the one place that maps errors to HTTP.

Domain code raises `shared.errors.DomainError` subclasses, which know nothing of HTTP; `install_problem_handlers`
turns them, FastAPI's validation errors and Starlette's HTTP errors into `application/problem+json`.
No handler echoes request input: a BSN must never come back in an error body.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import PROBLEM_PREFIX, DomainError, RepeatedMelding, ValidationFailed

PROBLEM_MEDIA_TYPE = "application/problem+json"

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = "2"  # sent with every 503: when a client may try again


STATUS_BY_SLUG = {
    "validation": 422,
    "unauthorized": 401,
    "forbidden": 403,
    "consent-required": 403,
    "not-found": 404,
    "conflict": 409,
    "idempotency-conflict": 409,
    "unavailable": 503,
    "internal": 500,
    "method-not-allowed": 405,
    "payload-too-large": 413,
    "unsupported-media-type": 415,
    "too-many-requests": 429,
}


NOT_JSON = {"field": "body", "message": "the body is not valid JSON", "code": "json_invalid"}


class FieldError(BaseModel):
    field: str = Field(examples=["patient.bsn"])
    message: str = Field(examples=["not a valid BSN: 9 digits passing the elfproef"])
    code: str = Field(examples=["value_error"])


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(examples=["urn:kansrijk:problem:validation"])
    title: str = Field(examples=["Validation failed"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["1 field is invalid"])
    instance: str | None = Field(None, description="The request id, to quote to the operators.")
    errors: list[FieldError] | None = None
    existing: str | None = Field(
        None, description="With a repeated melding (409): the open melding it repeats, `/v1/meldingen/{id}`."
    )


def problem_response(
    slug: str,
    title: str,
    detail: str,
    *,
    request: Request | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> JSONResponse:
    status = STATUS_BY_SLUG[slug]
    body: dict[str, Any] = {"type": PROBLEM_PREFIX + slug, "title": title, "status": status, "detail": detail}
    body.update(extra or {})
    request_id = getattr(request.state, "request_id", None) if request is not None else None
    if request_id:
        body["instance"] = f"urn:kansrijk:request:{request_id}"
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_path(location: tuple[Any, ...]) -> str:
    # ("body", "patient", "bsn") -> "patient.bsn"; ("query", "limit") -> "limit"; list indexes kept.
    parts = [str(p) for p in location]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """The errors of a failed validation, naming each field, without the offending input."""
    out = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":  # located at a character offset, which names no field
            out.append(NOT_JSON)
            continue
        message = str(error.get("msg", "invalid"))
        # pydantic prefixes messages of our own validators; the rest of the message is ours.
        message = message.removeprefix("Value error, ")
        out.append(
            {"field": _field_path(tuple(error.get("loc", ()))), "message": message, "code": error.get("type", "")}
        )
    return out


def install_problem_handlers(app: FastAPI) -> None:
    # The database's errors are imported here, not with the module: the portal answers problems too but
    # has no database, and SQLAlchemy is a tenth of a second of its start-up (docs/performance.md).
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from shared.db import is_database_unavailable

    async def on_domain_error(request: Request, exc: DomainError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.slug == "unauthorized" else None
        if exc.slug in ("unavailable", "too-many-requests"):
            headers = {"Retry-After": RETRY_AFTER_SECONDS}
        errors = None
        if isinstance(exc, ValidationFailed):
            errors = [{"field": exc.field, "message": exc.detail, "code": "value_error"}]
        extra = {"existing": exc.existing} if isinstance(exc, RepeatedMelding) else None
        return problem_response(
            exc.slug, exc.title, exc.detail, request=request, headers=headers, errors=errors, extra=extra
        )

    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.method != "PUT" and exc.errors() and all(e.get("loc", ("",))[0] == "path" for e in exc.errors()):
            # An id of a form the platform never gives out names nothing: as unknown as any other id.
            # (A PUT names what it creates: there an ill-formed id is the client's input error, 422.)
            return problem_response("not-found", "Not found", "no resource with this id", request=request)
        errors = validation_errors(exc)
        detail = f"{len(errors)} field{'s are' if len(errors) != 1 else ' is'} invalid: " + ", ".join(
            e["field"] for e in errors
        )
        return problem_response("validation", "Validation failed", detail, request=request, errors=errors)

    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (400, 422):
            # The framework's 400 is a body it could not decode (not UTF-8, say): to the client that is one
            # more invalid field, answered like every other (the contract knows no 400).
            return problem_response(
                "validation", "Validation failed", "1 field is invalid: body", request=request, errors=[NOT_JSON]
            )
        slug = {
            401: "unauthorized",
            403: "forbidden",
            404: "not-found",
            405: "method-not-allowed",
            409: "conflict",
            413: "payload-too-large",
            415: "unsupported-media-type",
            503: "unavailable",
        }.get(exc.status_code, "internal")
        title = slug.replace("-", " ").capitalize()
        detail = exc.detail if isinstance(exc.detail, str) else title
        # The framework's headers go along: a 405 names the methods the route has in `Allow`.
        response = problem_response(
            slug, title, detail, request=request, headers=dict(exc.headers) if exc.headers else None
        )
        response.status_code = exc.status_code
        return response

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The exception text may carry input; log only its type, never the message.
        log.error("unhandled_error", error_type=getattr(exc, "error_type", type(exc).__name__))
        return problem_response("internal", "Internal error", "An unexpected error occurred.", request=request)

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        if not is_database_unavailable(exc):
            return await on_unexpected(request, exc)
        # Restarting, unreachable, or every pooled connection busy (the pool's timeout passed): the
        # transaction was rolled back, so the client can safely try again.
        busy = isinstance(exc, PoolTimeout)
        log.warning("database_busy" if busy else "database_unavailable", error_type=type(exc).__name__)
        return problem_response(
            "unavailable",
            "Service unavailable",
            (
                "The service's database connections are all in use just now"
                if busy
                else "The service's database cannot be reached just now"
            )
            + "; nothing was stored. Retry the request (with the same Idempotency-Key).",
            request=request,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    app.add_exception_handler(DomainError, on_domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(OSError, on_database_error)
    app.add_exception_handler(PoolTimeout, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)


# What each problem looks like, for the OpenAPI documents: the details are real ones the services send.
EXAMPLE_DETAILS = {
    "validation": "2 fields are invalid: patient.bsn, patient.address.postcode",
    "unauthorized": "the token has expired",
    "forbidden": "this action needs the scope melding:write",
    "consent-required": "the consent has been withdrawn",
    "not-found": "no melding with this id for your organisation",
    "conflict": "active jgz organisation(s) 87654321 already serve part of these gemeenten or postcode ranges",
    "idempotency-conflict": "this Idempotency-Key was used before with a different request",
    "unavailable": "the consent service did not answer; retry with the same Idempotency-Key",
    "payload-too-large": "the request body may hold at most 1048576 bytes",
    "unsupported-media-type": "this endpoint reads JSON: send the body with Content-Type: application/json",
    "method-not-allowed": "Method Not Allowed",
    "too-many-requests": "your organisation has 4 such requests running already: retry when one is done",
    "internal": "An unexpected error occurred.",
}
EXAMPLE_ERRORS = [
    {"field": "patient.bsn", "message": "not a valid BSN: 9 digits passing the elfproef", "code": "value_error"},
    {
        "field": "patient.address.postcode",
        "message": "not a valid postcode: the letters SA, SD and SS are not used",
        "code": "value_error",
    },
]


def problem_example(slug: str) -> dict[str, Any]:
    """A realistic problem document of this type (the `validation` one with its `errors` list)."""
    example: dict[str, Any] = {
        "type": PROBLEM_PREFIX + slug,
        "title": slug.replace("-", " ").capitalize(),
        "status": STATUS_BY_SLUG[slug],
        "detail": EXAMPLE_DETAILS[slug],
        "instance": "urn:kansrijk:request:3f1c2a9e7d1b4c559a7e0b6f2d1e8c41",
    }
    if slug == "validation":
        example["errors"] = EXAMPLE_ERRORS
    return example


def problem_responses(*slugs: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each error it can answer, so `/docs` shows them with the problem schema."""
    out: dict[int | str, dict[str, Any]] = {}
    for slug in ("unauthorized", "forbidden", *slugs):
        status = STATUS_BY_SLUG[slug]
        entry = out.setdefault(
            status,
            {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {"examples": {}}}, "description": ""},
        )
        entry["content"][PROBLEM_MEDIA_TYPE]["examples"][slug] = {"value": problem_example(slug)}
        entry["description"] = " / ".join(filter(None, [entry["description"], f"problem: {slug}"]))
    return out
