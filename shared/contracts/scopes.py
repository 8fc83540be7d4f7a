"""Who may hold which scope: the organisation types and the scopes of the platform's tokens (docs/security.md,
"Scopes and claims"). Vocabulary, no machinery: `shared.auth` enforces it, and the CLI names it in its help
without importing the web stack."""

from __future__ import annotations

from shared.contracts.vocabulary import RECIPIENT_TYPES, SENDER_TYPES

ORGANISATION_TYPES = frozenset({*SENDER_TYPES, *RECIPIENT_TYPES, "operator", "service"})
# The woman herself, through the portal: a short-lived token whose `sub` is the keyed hash of her BSN.
PATIENT_TYPES = ("patient",)
ORG_TYPES = frozenset({*ORGANISATION_TYPES, *PATIENT_TYPES})
OPERATOR_TYPES = ("operator",)
SERVICE_TYPES = ("service",)
# Who may hold each scope: a token whose org_type is not listed for a scope it carries is refused (403)
# on that scope's routes, whatever the issuer put in it. docs/security.md explains each line.
SCOPE_HOLDERS: dict[str, tuple[str, ...]] = {
    "consent:write": SENDER_TYPES,
    "consent:read": SENDER_TYPES,
    "consent:check": SERVICE_TYPES,
    "melding:write": SENDER_TYPES,
    "melding:read": SENDER_TYPES,
    "delivery:read": RECIPIENT_TYPES,
    "delivery:write": RECIPIENT_TYPES,
    "routing:admin": OPERATOR_TYPES,
    # Operators (the platform's privacy officer among them) read every record; any other organisation
    # only the records of its own accesses (see shared.api.audit_router).
    "audit:read": (*OPERATOR_TYPES, *SENDER_TYPES, *RECIPIENT_TYPES),
    # Programme figures hold no person (small numbers suppressed): any organisation the issuer grants it.
    "figures:read": tuple(sorted(ORGANISATION_TYPES)),
    # Her own consents, meldingen and access log, and withdrawing her consent: nothing of anyone else.
    "patient:self": PATIENT_TYPES,
}
SCOPES = tuple(SCOPE_HOLDERS)
MAX_TOKEN_LIFETIME_SECONDS = 12 * 3600  # exp - iat: a token for a working day at most
MAX_PATIENT_TOKEN_LIFETIME_SECONDS = 15 * 60  # the portal asks again for each page she opens
