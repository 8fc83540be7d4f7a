"""Sample data every kind of test shares (unit, integration, end to end): plain values, no I/O, nothing that
starts a process or opens a connection."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.auth import SigningKey
from shared.clock import today_nl
from shared.crypto import new_key_ring_entry
from shared.settings import ServiceSettings

BSN = "999999990"
SENDER = "10000001"


def melding_body(consent_id: str, bsn: str = BSN, **overrides: Any) -> dict[str, Any]:
    """A melding as a sender's EHR posts it: one patient, a due date 160 days ahead, two risk domains."""
    body: dict[str, Any] = {
        "consent_id": consent_id,
        "patient": {
            "bsn": bsn,
            "name": {"given": "Sanne", "family": "de Vries"},
            "birth_date": "1998-03-14",
            "address": {"postcode": "1011 ab", "house_number": "12", "house_number_suffix": "A", "city": "Amsterdam"},
            "phone": "0612345678",
        },
        "pregnancy": {"expected_due_date": (today_nl() + timedelta(days=160)).isoformat()},
        "risk_domains": ["verslaving", "financien-schulden"],
        "recipient_types": ["jgz", "wijkteam"],
        "urgency": "regular",
        "note": "Cliënte gebruikt methadon; schulden bij meerdere schuldeisers.",
        "contact": {"name": "M. Jansen, verloskundige", "phone": "0201234567"},
    }
    body.update(overrides)
    return body


def es256_key(kid: str = "es-1") -> SigningKey:
    """A fresh ES256 key pair, as an issuer's key (the verifier's tests)."""
    private = ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(private_pem=private_pem, public_pem=public_pem, kid=kid, algorithm="ES256")


def production_settings(tmp_path: object, **overrides: object) -> ServiceSettings:
    """Settings a production service starts with (an issuer of its own, encryption keys); the key settings given."""
    values: dict[str, Any] = {
        "environment": "production",
        "jwt_issuer": "https://issuer.example",
        "amqp_url": "amqp://kansrijk:s3cr3t-value@mq/",
        "data_dir": tmp_path,
        "encryption_keys": new_key_ring_entry("k1"),
        "bsn_hash_key": "a" * 43,
    }
    values.update(overrides)
    return ServiceSettings(**values)
