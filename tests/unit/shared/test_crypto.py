"""Field encryption and keyed BSN hashes (shared.crypto)."""

from __future__ import annotations

import pytest

from shared.crypto import CipherError, FieldCipher, new_key_ring_entry

HASH_KEY = "a" * 43  # 32 bytes of base64url


def ring(*entries: str) -> FieldCipher:
    return FieldCipher.parse(",".join(entries), HASH_KEY)


def test_a_value_round_trips_and_its_stored_form_shows_nothing_of_it() -> None:
    cipher = ring(new_key_ring_entry("k1"))
    stored = cipher.encrypt('{"bsn": "999999990", "note": "methadon"}', "meldingen.content")
    assert "999999990" not in stored and "methadon" not in stored and stored.startswith("kr1:k1:")
    assert cipher.decrypt(stored, "meldingen.content") == '{"bsn": "999999990", "note": "methadon"}'
    assert stored != cipher.encrypt('{"bsn": "999999990", "note": "methadon"}', "meldingen.content")  # fresh nonce


def test_rotation_old_rows_still_decrypt_and_new_writes_use_the_new_key() -> None:
    old, new = new_key_ring_entry("2025"), new_key_ring_entry("2026")
    written_before = ring(old).encrypt("999999990", "consents.bsn")
    rotated = ring(new, old)
    assert rotated.decrypt(written_before, "consents.bsn") == "999999990"
    assert rotated.encrypt("999999990", "consents.bsn").startswith("kr1:2026:")
    with pytest.raises(CipherError, match="not in the key ring"):
        ring(new).decrypt(written_before, "consents.bsn")  # the old key retired too early: said plainly


def test_a_changed_or_moved_ciphertext_does_not_decrypt() -> None:
    cipher = ring(new_key_ring_entry("k1"))
    stored = cipher.encrypt("999999990", "consents.bsn")
    with pytest.raises(CipherError, match="does not authenticate"):
        cipher.decrypt(stored, "audit_log.patient_bsn")
    tampered = stored[:-2] + ("A" if stored[-2] != "A" else "B") + stored[-1]
    with pytest.raises(CipherError):
        cipher.decrypt(tampered, "consents.bsn")


def test_the_bsn_hash_is_keyed_stable_and_never_the_bsn() -> None:
    first = ring(new_key_ring_entry("k1"))
    assert first.bsn_ref("999999990") == first.bsn_ref("999999990") != first.bsn_ref("123456782")
    other = FieldCipher.parse(new_key_ring_entry("k1"), "b" * 43)
    assert other.bsn_ref("999999990") != first.bsn_ref("999999990")  # without the key it cannot be recomputed
    assert "999999990" not in first.bsn_ref("999999990")


@pytest.mark.parametrize(
    "keys,hash_key", [("", HASH_KEY), ("k1", HASH_KEY), ("k1=c2hvcnQ", HASH_KEY), (new_key_ring_entry("k1"), "c2hvcnQ")]
)
def test_a_malformed_key_ring_is_refused_without_echoing_key_material(keys: str, hash_key: str) -> None:
    with pytest.raises(CipherError) as refused:
        FieldCipher.parse(keys, hash_key)
    material = keys.partition("=")[2]
    assert not material or material not in str(refused.value)
