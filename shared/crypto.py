"""Personal data at rest: authenticated encryption of fields, keyed hashes for lookups by BSN.

A field is encrypted with AES-256-GCM under the *current* key of a key ring; the stored text names the
key (`kr1:<kid>:<base64url(nonce | ciphertext+tag)>`), so that after a rotation (a new key put first in
the ring, the old ones kept after it) old rows still decrypt while new writes use the new key, with no
downtime and no bulk re-encryption. The column a value belongs to is authenticated with it
(associated data), so a ciphertext copied into another column does not decrypt.

A BSN is never looked up in plain: rows carry `HMAC-SHA256(bsn_hash_key, bsn)` and queries compare that.

Keys come from settings (`KANSRIJK_ENCRYPTION_KEYS`, `KANSRIJK_BSN_HASH_KEY`); in development they are
generated once under `<data dir>/keys/` like the development signing key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from shared.settings import ServiceSettings

PREFIX = "kr1"
NONCE_BYTES = 12


class CipherError(Exception):
    """A key ring that cannot be used (malformed, or a row encrypted under a key no longer configured)."""


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class FieldCipher:
    """A key ring (first key encrypts, every key decrypts) and the BSN hash key."""

    keys: tuple[tuple[str, bytes], ...]
    hash_key: bytes

    def __post_init__(self) -> None:
        if not self.keys:
            raise CipherError("the key ring is empty")
        for kid, key in self.keys:
            if not kid or ":" in kid or len(key) != 32:
                raise CipherError("each encryption key needs a kid without ':' and 32 bytes of key")
        if len(self.hash_key) < 32:
            raise CipherError("the BSN hash key needs at least 32 bytes")

    @classmethod
    def parse(cls, keys: str, hash_key: str) -> FieldCipher:
        """`keys`: `kid=base64key,kid=base64key` (the first is current); `hash_key`: base64."""
        ring = []
        for entry in (e.strip() for e in keys.split(",") if e.strip()):
            kid, sep, material = entry.partition("=")
            if not sep:
                raise CipherError("KANSRIJK_ENCRYPTION_KEYS entries are kid=base64key")
            try:
                ring.append((kid.strip(), _b64decode(material.strip())))
            except ValueError as exc:
                raise CipherError("an encryption key is not valid base64") from exc
        try:
            return cls(tuple(ring), _b64decode(hash_key.strip()))
        except ValueError as exc:
            raise CipherError("the BSN hash key is not valid base64") from exc

    def encrypt(self, plaintext: str, purpose: str) -> str:
        kid, key = self.keys[0]
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), purpose.encode())
        return f"{PREFIX}:{kid}:{_b64encode(nonce + sealed)}"

    def decrypt(self, stored: str, purpose: str) -> str:
        prefix, _, rest = stored.partition(":")
        kid, _, payload = rest.partition(":")
        if prefix != PREFIX or not payload:
            raise CipherError(f"a {purpose} value is not in the encrypted format")
        key = dict(self.keys).get(kid)
        if key is None:
            raise CipherError(f"a {purpose} value is encrypted under key {kid!r}, which is not in the key ring")
        raw = _b64decode(payload)
        try:
            return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode()).decode()
        except InvalidTag as exc:
            raise CipherError(f"a {purpose} value does not authenticate (tampered, or moved between columns)") from exc

    def bsn_ref(self, bsn: str) -> str:
        """The keyed hash a BSN is looked up by."""
        return hmac.new(self.hash_key, bsn.encode(), hashlib.sha256).hexdigest()


def new_key_ring_entry(kid: str | None = None) -> str:
    """A fresh `kid=base64key` (what `kansrijk keys new` prints for a rotation)."""
    return f"{kid or uuid.uuid4().hex[:8]}={_b64encode(secrets.token_bytes(32))}"


def write_once(path: Path, make: Callable[[], bytes]) -> bytes:
    """The content of `path`, created with `make()` (mode 0600) if absent.

    Several processes may start at once: the file is written aside and linked into place, so exactly
    one content wins and every process reads that one.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(make())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; use its content
        finally:
            tmp.unlink()
    return path.read_bytes()


def load_or_create_dev_cipher(key_dir: Path) -> FieldCipher:
    """The development key ring and hash key under `key_dir`, created on first use."""
    content = write_once(
        key_dir / "dev-field-keys.json",
        lambda: json.dumps(
            {
                "encryption_keys": new_key_ring_entry("dev1"),
                "bsn_hash_key": _b64encode(secrets.token_bytes(32)),
            }
        ).encode(),
    )
    values = json.loads(content)
    return FieldCipher.parse(values["encryption_keys"], values["bsn_hash_key"])


def cipher_for(settings: ServiceSettings) -> FieldCipher:
    """The key ring of a service's settings (the generated development one when none is configured)."""
    if settings.encryption_keys and settings.bsn_hash_key:
        return FieldCipher.parse(settings.encryption_keys, settings.bsn_hash_key)
    if settings.is_development:
        return load_or_create_dev_cipher(settings.dev_key_dir)
    raise CipherError("KANSRIJK_ENCRYPTION_KEYS and KANSRIJK_BSN_HASH_KEY are required outside development")
