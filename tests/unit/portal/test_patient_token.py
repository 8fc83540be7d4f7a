"""The patient token: minted for one woman by the keyed hash of her BSN, short-lived, one scope."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from jose import jwt

from shared.auth import (
    SCOPE_HOLDERS,
    TokenVerifier,
    current_patient,
    issue_patient_token,
    issue_token,
    load_or_create_dev_key,
)
from shared.errors import Forbidden, Unauthorized
from shared.settings import ServiceSettings

REF = hashlib.sha256(b"her").hexdigest()


@pytest.fixture
def verifier(tmp_path: Path) -> TokenVerifier:
    return TokenVerifier(ServiceSettings(data_dir=tmp_path))


async def test_a_patient_token_carries_her_keyed_bsn_and_only_her_scope(
    tmp_path: Path, verifier: TokenVerifier
) -> None:
    key = load_or_create_dev_key(tmp_path / "keys")
    token = issue_patient_token(key, issuer="kansrijk-dev", audience="kansrijk", patient_ref=REF)
    principal = await verifier.verify(token)
    assert (principal.org_type, principal.org_id, principal.sub) == ("patient", "patient", REF)
    assert principal.scopes == {"patient:self"}
    assert "999999990" not in str(jwt.get_unverified_claims(token))
    assert await current_patient(principal) is principal


def test_a_patient_token_is_never_minted_with_a_bsn_or_for_long(tmp_path: Path) -> None:
    key = load_or_create_dev_key(tmp_path / "keys")
    with pytest.raises(ValueError, match="keyed hash"):
        issue_patient_token(key, issuer="i", audience="a", patient_ref="999999990")
    with pytest.raises(ValueError, match="15 minutes"):
        issue_patient_token(key, issuer="i", audience="a", patient_ref=REF, ttl_seconds=3600)


async def test_a_long_lived_patient_token_is_refused(tmp_path: Path, verifier: TokenVerifier) -> None:
    key = load_or_create_dev_key(tmp_path / "keys")
    token = issue_token(
        key, issuer="kansrijk-dev", audience="kansrijk", org_id="patient", org_type="patient",
        scopes="patient:self", sub=REF, ttl_seconds=901,
    )  # fmt: skip
    with pytest.raises(Unauthorized, match="15 minutes"):
        await verifier.verify(token)


async def test_a_patient_token_that_names_her_otherwise_is_forbidden(tmp_path: Path, verifier: TokenVerifier) -> None:
    key = load_or_create_dev_key(tmp_path / "keys")
    for org_id, sub in (("patient", "999999990"), ("12345678", REF)):
        token = issue_token(
            key, issuer="kansrijk-dev", audience="kansrijk", org_id=org_id, org_type="patient",
            scopes="patient:self", sub=sub, ttl_seconds=300,
        )  # fmt: skip
        with pytest.raises(Forbidden):
            await current_patient(await verifier.verify(token))


def test_only_a_patient_holds_the_patient_scope_and_a_patient_holds_nothing_else() -> None:
    assert SCOPE_HOLDERS["patient:self"] == ("patient",)
    assert [s for s, holders in SCOPE_HOLDERS.items() if "patient" in holders] == ["patient:self"]
