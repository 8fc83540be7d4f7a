"""Expected errors, free of HTTP: `shared.problems` maps each `slug` to a status and a problem document.

`detail` is shown to the caller and may be logged: it must never hold personal data.
"""

from __future__ import annotations

# Every problem's `type` is this prefix and its slug (`urn:kansrijk:problem:not-found`): shared.problems.
PROBLEM_PREFIX = "urn:kansrijk:problem:"


class DomainError(Exception):
    """Base of every expected error. `slug` names the problem type; `detail` must hold no personal data."""

    slug = "conflict"
    title = "Conflict"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    slug, title = "not-found", "Not found"


class Conflict(DomainError):
    slug, title = "conflict", "Conflict"


class RepeatedMelding(Conflict):
    """The sender's organisation has an open melding for this patient and recipient type already."""

    def __init__(self, existing: str) -> None:
        super().__init__("your organisation has an open melding for this patient and recipient type: see `existing`")
        self.existing = existing  # the path of the open melding (an id, no personal data)


class IdempotencyConflict(DomainError):
    slug, title = "idempotency-conflict", "Idempotency key reused with another request"


class ConsentRequired(DomainError):
    slug, title = "consent-required", "Consent required"


class Unavailable(DomainError):
    slug, title = "unavailable", "Service unavailable"


class Unauthorized(DomainError):
    slug, title = "unauthorized", "Unauthorized"


class Forbidden(DomainError):
    slug, title = "forbidden", "Forbidden"


class UnsupportedMediaType(DomainError):
    slug, title = "unsupported-media-type", "Unsupported media type"


class ValidationFailed(DomainError):
    """Input that passed the schema but breaks a rule only the domain can check (e.g. against today)."""

    slug, title = "validation", "Validation failed"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
