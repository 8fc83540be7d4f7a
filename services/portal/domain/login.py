"""Who may log in: the rules on the provider's claims (BSN, level of assurance). No I/O here.

Health data asks for DigiD at level *substantieel* at least (the DigiD app with ID check, or a
level that the broker reports as such); *basis* (password) and *midden* (SMS or app) are refused
with an explanation. A broker names levels by their SAML/eIDAS URIs or by word; both are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from shared.identifiers import is_valid_bsn


class Level(IntEnum):
    basis = 10
    midden = 20
    substantieel = 25
    hoog = 30


REQUIRED_LEVEL = Level.substantieel

# How DigiD levels arrive through brokers (NL GOV OIDC profile, Logius, eIDAS) and as plain words.
LEVEL_NAMES: dict[str, Level] = {
    "basis": Level.basis,
    "midden": Level.midden,
    "substantieel": Level.substantieel,
    "hoog": Level.hoog,
    "urn:oasis:names:tc:saml:2.0:ac:classes:passwordprotectedtransport": Level.basis,
    "urn:oasis:names:tc:saml:2.0:ac:classes:mobiletwofactorcontract": Level.midden,
    "urn:oasis:names:tc:saml:2.0:ac:classes:smartcard": Level.substantieel,
    "urn:oasis:names:tc:saml:2.0:ac:classes:smartcardpki": Level.hoog,
    "http://eidas.europa.eu/loa/low": Level.basis,
    "http://eidas.europa.eu/loa/substantial": Level.substantieel,
    "http://eidas.europa.eu/loa/high": Level.hoog,
}


def level_of(value: Any) -> Level | None:
    """The level a claim names; None for anything else (a number, a list, an unknown word)."""
    if not isinstance(value, str):
        return None
    return LEVEL_NAMES.get(value.strip().lower())


@dataclass(frozen=True)
class LoggedIn:
    bsn: str


@dataclass(frozen=True)
class Refused:
    reason: str  # "level-too-low" | "no-bsn"


def login_decision(claims: dict[str, Any], *, bsn_claim: str, loa_claim: str) -> LoggedIn | Refused:
    """Whether the verified ID token's claims let her in: a valid BSN, at least *substantieel*."""
    level = level_of(claims.get(loa_claim))
    if level is None or level < REQUIRED_LEVEL:
        return Refused("level-too-low")
    bsn = claims.get(bsn_claim)
    if not isinstance(bsn, str) or not is_valid_bsn(bsn.strip()):
        return Refused("no-bsn")
    return LoggedIn(bsn.strip())
