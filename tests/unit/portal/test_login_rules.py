"""Who may log in: a valid BSN from the configured claim, at DigiD level substantieel or higher."""

from __future__ import annotations

from typing import Any

import pytest

from services.portal.domain.login import Level, LoggedIn, Refused, level_of, login_decision

SMARTCARD = "urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard"
SMS = "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract"


def decide(claims: dict[str, Any], bsn_claim: str = "bsn", loa_claim: str = "acr") -> LoggedIn | Refused:
    return login_decision(claims, bsn_claim=bsn_claim, loa_claim=loa_claim)


def test_substantieel_or_higher_with_a_valid_bsn_logs_her_in() -> None:
    assert decide({"bsn": "999999990", "acr": SMARTCARD}) == LoggedIn("999999990")
    assert decide({"bsn": "999999990", "acr": "hoog"}) == LoggedIn("999999990")
    assert decide({"bsn": "999999990", "acr": "http://eidas.europa.eu/LoA/substantial"}) == LoggedIn("999999990")


@pytest.mark.parametrize(
    "level", [SMS, "midden", "basis", "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"]
)
def test_midden_and_basis_are_refused_as_too_low(level: str) -> None:
    assert decide({"bsn": "999999990", "acr": level}) == Refused("level-too-low")


@pytest.mark.parametrize("level", [None, 25, ["substantieel"], "", "substantial-ish"])
def test_a_missing_or_unknown_level_counts_as_too_low(level: object) -> None:
    assert decide({"bsn": "999999990", "acr": level}) == Refused("level-too-low")


@pytest.mark.parametrize("bsn", [None, "", "123456789", "99999999", 999999990, "9999999900"])
def test_no_valid_bsn_no_login(bsn: object) -> None:
    assert decide({"bsn": bsn, "acr": SMARTCARD}) == Refused("no-bsn")


def test_the_claim_names_are_configurable() -> None:
    claims = {"urn:nl-eid-gdi:1.0:id:BSN": "999999990", "loa": "substantieel", "bsn": "123456782", "acr": "basis"}
    assert decide(claims, "urn:nl-eid-gdi:1.0:id:BSN", "loa") == LoggedIn("999999990")


def test_levels_are_ordered_as_digid_orders_them() -> None:
    assert Level.basis < Level.midden < Level.substantieel < Level.hoog
    assert level_of(" Substantieel ") is Level.substantieel
