"""Authentication and authorisation: the one module that uses python-jose.

Tokens are JWTs signed with RS256 or ES256 — nothing else is accepted, whatever the token's header
says, so neither `alg: none` nor an HMAC token "signed" with our public key gets through. `iss`, `aud`
and `exp` are always checked. Claims become a `Principal`; routes ask for a scope with `require_scope`.

Keys: in development, a key pair generated on first use under `<data dir>/keys/` (every service
started with the development settings trusts it, and `kansrijk token` signs with it); in production,
a PEM public key (`KANSRIJK_JWT_PUBLIC_KEY`) or a JWKS URL (`KANSRIJK_JWT_JWKS_URL`), fetched with
httpx and cached.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jose import jwk, jwt
from jose.exceptions import ExpiredSignatureError, JWKError, JWTClaimsError, JWTError

# The authorisation vocabulary lives beside the other contracts (the CLI reads it without the web stack).
from shared.contracts.scopes import MAX_PATIENT_TOKEN_LIFETIME_SECONDS as MAX_PATIENT_TOKEN_LIFETIME_SECONDS
from shared.contracts.scopes import MAX_TOKEN_LIFETIME_SECONDS as MAX_TOKEN_LIFETIME_SECONDS
from shared.contracts.scopes import OPERATOR_TYPES as OPERATOR_TYPES
from shared.contracts.scopes import ORG_TYPES as ORG_TYPES
from shared.contracts.scopes import PATIENT_TYPES as PATIENT_TYPES
from shared.contracts.scopes import SCOPE_HOLDERS as SCOPE_HOLDERS
from shared.contracts.scopes import SCOPES as SCOPES
from shared.contracts.scopes import SERVICE_TYPES as SERVICE_TYPES
from shared.crypto import write_once
from shared.errors import Forbidden, Unauthorized, Unavailable
from shared.settings import ServiceSettings

ALLOWED_ALGORITHMS = frozenset({"RS256", "ES256"})
CLOCK_LEEWAY_SECONDS = 30
# Claims are bounded like the columns that store them; printable, no NUL, no control characters.
_CLAIM_FORMAT = {
    "org_id": re.compile(r"^[A-Za-z0-9._-]{1,64}$"),
    "sub": re.compile(r"^[\x20-\x7E\u00A0-\uD7FF\uE000-\uFFFD]{1,200}$"),
}
JWKS_MIN_REFETCH_SECONDS = 30.0
# A patient token names her by the keyed hash of her BSN (shared.crypto.FieldCipher.bsn_ref), never the BSN.
PATIENT_REF_FORMAT = re.compile(r"^[0-9a-f]{64}$")
PATIENT_ORG_ID = "patient"
PATIENT_SCOPE = "patient:self"


@dataclass(frozen=True)
class Principal:
    """Who is calling: taken from the verified token, never from a request body."""

    sub: str
    org_id: str
    org_type: str
    scopes: frozenset[str]
    token: str = ""


# Who acts when the platform itself touches personal data (retention), as the audit log names it.
PLATFORM = Principal(sub="kansrijk-retention", org_id="kansrijk-platform", org_type="service", scopes=frozenset())


# --- development keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    private_pem: bytes
    public_pem: bytes
    kid: str
    algorithm: str = "RS256"


def _kid_for(public_pem: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(public_pem).digest()[:12]).decode().rstrip("=")


def load_or_create_dev_key(key_dir: Path) -> SigningKey:
    """The development key pair under `key_dir`, created on first use.

    Several processes may start at once: exactly one key wins and every process reads that one.
    """

    def generate() -> bytes:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    private_pem = write_once(key_dir / "dev-jwt-private.pem", generate)
    private_key = serialization.load_pem_private_key(private_pem, password=None)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(private_pem=private_pem, public_pem=public_pem, kid=_kid_for(public_pem))


def issue_token(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    org_id: str,
    org_type: str,
    scopes: list[str] | str,
    sub: str = "dev-user",
    ttl_seconds: int = 3600,
) -> str:
    """A signed JWT with the claims the services read."""
    now = int(time.time())
    scope = scopes if isinstance(scopes, str) else " ".join(scopes)
    claims = {
        "iss": issuer, "aud": audience, "sub": sub, "org_id": org_id, "org_type": org_type,
        "scope": scope, "iat": now, "nbf": now, "exp": now + ttl_seconds, "jti": uuid.uuid4().hex,
    }  # fmt: skip
    return str(jwt.encode(claims, key.private_pem.decode(), algorithm=key.algorithm, headers={"kid": key.kid}))


class DevelopmentOnly(Exception):
    """A development token was asked for outside development."""


def development_token(
    settings: ServiceSettings,
    *,
    org_id: str,
    org_type: str,
    scopes: list[str] | str,
    sub: str = "dev-user",
    ttl_seconds: int = 3600,
) -> str:
    """A token signed with the development key, which services running with these settings accept: the one
    way the CLI, the demo, the benchmark and the tests mint one. Outside development tokens come from the
    issuer, so this raises `DevelopmentOnly` there."""
    if not settings.is_development:
        raise DevelopmentOnly("development tokens exist only in development")
    return issue_token(
        load_or_create_dev_key(settings.dev_key_dir),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        org_id=org_id,
        org_type=org_type,
        scopes=scopes,
        sub=sub,
        ttl_seconds=ttl_seconds,
    )


class ServiceTokens:
    """Tokens a service presents to another (`org_type: service`), signed by its own key and cached."""

    def __init__(self, key: SigningKey, *, issuer: str, audience: str, service: str, scopes: list[str]) -> None:
        self.key, self.issuer, self.audience = key, issuer, audience
        self.service, self.scopes = service, scopes
        self._token, self._expires = "", 0.0

    @classmethod
    def for_settings(cls, settings: Any, *, scopes: list[str]) -> ServiceTokens:
        return cls(
            signing_key_for(settings),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            service=settings.service_name,
            scopes=scopes,
        )

    def token(self) -> str:
        if time.time() > self._expires - 60:
            ttl = 900
            self._token = issue_token(
                self.key,
                issuer=self.issuer,
                audience=self.audience,
                org_id=f"kansrijk-{self.service}",
                org_type="service",
                scopes=self.scopes,
                sub=f"kansrijk-{self.service}",
                ttl_seconds=ttl,
            )
            self._expires = time.time() + ttl
        return self._token


def pem_text(value: str) -> str:
    """A key setting's PEM: the setting itself when it holds one, else the file it names."""
    return value if value.lstrip().startswith("-----BEGIN") else Path(value).read_text()


def signing_key_for(settings: Any) -> SigningKey:
    """The key a service signs its own tokens with: `service_token_key` (PEM or path), or in development the
    development key."""
    if settings.service_token_key:
        pem = pem_text(settings.service_token_key).encode()
        private = serialization.load_pem_private_key(pem, password=None)
        algorithm = "RS256" if isinstance(private, rsa.RSAPrivateKey) else "ES256"
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return SigningKey(pem, public_pem, settings.service_token_kid or _kid_for(public_pem), algorithm)
    if settings.is_development:
        return load_or_create_dev_key(settings.dev_key_dir)
    raise ValueError("production needs KANSRIJK_SERVICE_TOKEN_KEY to call other services")


def issue_patient_token(
    key: SigningKey, *, issuer: str, audience: str, patient_ref: str, ttl_seconds: int = 300
) -> str:
    """A short-lived token bound to one woman (`sub`: the keyed hash of her BSN), for her own data only."""
    if not PATIENT_REF_FORMAT.fullmatch(patient_ref):
        raise ValueError("a patient token names her by the keyed hash of her BSN")
    if ttl_seconds > MAX_PATIENT_TOKEN_LIFETIME_SECONDS:
        raise ValueError("a patient token lives 15 minutes at most")
    return issue_token(
        key,
        issuer=issuer,
        audience=audience,
        org_id=PATIENT_ORG_ID,
        org_type=PATIENT_TYPES[0],
        scopes=[PATIENT_SCOPE],
        sub=patient_ref,
        ttl_seconds=ttl_seconds,
    )


# --- verification -------------------------------------------------------------------------------


# Verified tokens kept, by their SHA-256, until they expire: an EHR sends the same token with every request
# for its lifetime, and a signature check (RS256, ES256) plus the claims' checks cost more than the rest of
# a small request's authentication. Bounded: the least recently used is dropped first. A token verified
# against the issuer's JWKS is kept only while that key set is: when the set is refetched (every
# `jwks_cache_seconds`) and has changed, each token is verified again, so a key the issuer removed stops
# working at the same refresh as it did without the cache.
VERIFIED_CACHE_SIZE = 4096


class TokenVerifier:
    """Verifies bearer tokens against the trusted keys of the settings. A token that verified is remembered by
    its hash until its `exp` (never longer) and, with a JWKS, while the key set it verified against is current
    and unchanged, so its next request skips the signature check; a token that did not verify is never
    remembered."""

    def __init__(self, settings: ServiceSettings, http: httpx.AsyncClient | None = None) -> None:
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self._static_keys: list[Any] = []
        self._jwks_url = settings.jwt_jwks_url
        self._jwks_ttl = settings.jwks_cache_seconds
        self._jwks: dict[str, Any] = {}
        self._jwks_fetched_at = float("-inf")
        self._jwks_version = 0  # counts the changes of the fetched key set
        self._http = http
        self._parsed: dict[tuple[str, str], Any] = {}
        self._verified: OrderedDict[bytes, tuple[float, int, Principal]] = OrderedDict()
        if settings.jwt_public_key:
            self._static_keys.append(pem_text(settings.jwt_public_key))
        if settings.is_development and not self._static_keys and not self._jwks_url:
            self._static_keys.append(load_or_create_dev_key(settings.dev_key_dir).public_pem.decode())

    async def _fetch_jwks(self) -> None:
        client = self._http or httpx.AsyncClient(timeout=5.0)
        try:
            response = await client.get(self._jwks_url or "")
            response.raise_for_status()
            keys = response.json().get("keys", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable("the token issuer's key set could not be fetched") from exc
        finally:
            if self._http is None:
                await client.aclose()
        fetched = {k.get("kid", ""): k for k in keys if isinstance(k, dict)}
        if fetched != self._jwks:
            self._jwks, self._jwks_version = fetched, self._jwks_version + 1
        self._jwks_fetched_at = time.monotonic()

    async def _candidate_keys(self, kid: str | None) -> list[Any]:
        if not self._jwks_url:
            return self._static_keys
        age = time.monotonic() - self._jwks_fetched_at
        # An unknown kid may mean the issuer rotated its keys: refetch, but at most every 30 s.
        if age > self._jwks_ttl or (kid not in self._jwks and age > JWKS_MIN_REFETCH_SECONDS):
            await self._fetch_jwks()
        if kid is not None:
            return [self._jwks[kid]] if kid in self._jwks else []
        return [*self._jwks.values(), *self._static_keys]

    def _key_object(self, key: Any, algorithm: str) -> Any:
        """The key parsed once per key and algorithm (parsing a PEM on every request costs more than verifying)."""
        cache_key = (json.dumps(key, sort_keys=True) if isinstance(key, dict) else str(key), algorithm)
        if cache_key not in self._parsed:
            try:
                self._parsed[cache_key] = jwk.construct(key, algorithm)
            except JWKError:
                self._parsed[cache_key] = key  # not a key for this algorithm: decoding with it fails as before
        return self._parsed[cache_key]

    async def verify(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(digest)
        if cached is not None:
            expires, keys_version, principal = cached
            if time.time() < expires and self._keys_still_current(keys_version):
                self._verified.move_to_end(digest)
                return principal
            # Expired (verified again, and refused past the leeway), or its key set is due or changed.
            del self._verified[digest]
        principal, expires, keys_version = await self._verify(token)
        self._verified[digest] = (expires, keys_version, principal)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    def _keys_still_current(self, keys_version: int) -> bool:
        """Whether the keys a remembered token verified against still stand: static keys always; a JWKS while it
        is not due for its refresh and has not changed since."""
        if not self._jwks_url:
            return True
        return keys_version == self._jwks_version and time.monotonic() - self._jwks_fetched_at <= self._jwks_ttl

    async def _verify(self, token: str) -> tuple[Principal, float, int]:
        """The token's principal, its `exp`, and the version of the key set it verified against."""
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as exc:
            raise Unauthorized("the bearer token is not a well-formed JWT") from exc
        algorithm, kid = header.get("alg"), header.get("kid")
        # Compared as strings: a list or an object in the header is no algorithm (and must not reach a dict).
        if not isinstance(algorithm, str) or algorithm not in ALLOWED_ALGORITHMS:
            raise Unauthorized("the token must be signed with RS256 or ES256")
        if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= 200):
            raise Unauthorized("the token's kid must be a short string")
        keys = await self._candidate_keys(kid)
        keys_version = self._jwks_version  # no await from here on: the keys below are of this version
        claims: dict[str, Any] | None = None
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    self._key_object(key, algorithm),
                    algorithms=[algorithm],
                    audience=self.audience,
                    issuer=self.issuer,
                    options={
                        "require_exp": True,
                        "require_iat": True,
                        "require_iss": True,
                        "require_aud": True,
                        "verify_nbf": True,
                        "leeway": CLOCK_LEEWAY_SECONDS,
                    },
                )
                break
            except ExpiredSignatureError as exc:
                raise Unauthorized("the token has expired") from exc
            except JWTClaimsError as exc:
                raise Unauthorized("the token's issuer or audience is not accepted here") from exc
            except JWTError:
                continue  # signature did not verify with this key; try the next
        if claims is None:
            raise Unauthorized("the token's signature does not verify against a trusted key")
        _check_lifetime(claims)
        return _principal_from_claims(claims, token), float(claims["exp"]), keys_version


def _check_lifetime(claims: dict[str, Any]) -> None:
    """`iat` not in the future and the token not issued for longer than MAX_TOKEN_LIFETIME_SECONDS
    (python-jose checks `exp` and `nbf`, and only the type of `iat`)."""
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int) or not isinstance(expires, int):
        raise Unauthorized("the token's iat and exp must be numeric dates")
    if issued > time.time() + CLOCK_LEEWAY_SECONDS:
        raise Unauthorized("the token is issued in the future")
    if expires - issued > MAX_TOKEN_LIFETIME_SECONDS:
        raise Unauthorized("the token lives longer than the platform accepts (12 hours)")
    if claims.get("org_type") in PATIENT_TYPES and expires - issued > MAX_PATIENT_TOKEN_LIFETIME_SECONDS:
        raise Unauthorized("a patient token lives longer than the platform accepts (15 minutes)")


def _principal_from_claims(claims: dict[str, Any], token: str) -> Principal:
    sub, org_id, org_type, scope = (claims.get(k) for k in ("sub", "org_id", "org_type", "scope"))
    if not all(isinstance(v, str) and v for v in (sub, org_id, org_type)) or not isinstance(scope, str):
        raise Unauthorized("the token lacks one of the claims sub, org_id, org_type, scope")
    if org_type not in ORG_TYPES:
        raise Unauthorized("the token's org_type is not one this platform knows")
    for name, pattern in _CLAIM_FORMAT.items():
        if not pattern.fullmatch(claims[name]):
            raise Unauthorized(f"the token's {name} claim is not of the accepted form (see docs/security.md)")
    if len(scope) > 1000 or "\x00" in scope:
        raise Unauthorized("the token's scope claim is too long")
    return Principal(
        sub=str(sub), org_id=str(org_id), org_type=str(org_type), scopes=frozenset(scope.split()), token=token
    )


def jwks_document(keys: list[SigningKey]) -> dict[str, Any]:
    """A JWKS for the given keys (what an issuer publishes; used by tests and the dev tooling)."""
    out = []
    for key in keys:
        entry = jwk.construct(key.public_pem.decode(), key.algorithm).to_dict()
        entry.update({"kid": key.kid, "use": "sig", "alg": key.algorithm})
        out.append({k: (v.decode() if isinstance(v, bytes) else v) for k, v in entry.items()})
    return {"keys": out}


# --- FastAPI dependencies -----------------------------------------------------------------------

bearer_scheme = HTTPBearer(auto_error=False, description="A JWT from the platform's token issuer.")


async def current_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("an Authorization: Bearer token is required")
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal) and known.token == credentials.credentials:
        return known  # verified already, before the body was read (shared.edge)
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = await verifier.verify(credentials.credentials)
    request.state.principal = principal
    return principal


def require_scope(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that yields the caller's principal if its token carries `scope`, else 403."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    holders = SCOPE_HOLDERS[scope]

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if scope not in principal.scopes:
            raise Forbidden(f"this action needs the scope {scope}")
        if principal.org_type not in holders:
            raise Forbidden(f"an organisation of type {principal.org_type} may not use the scope {scope}")
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    dependency.required_scope = scope  # type: ignore[attr-defined]  # shown in OpenAPI as x-required-scope
    return dependency


_patient_scope = require_scope(PATIENT_SCOPE)


async def current_patient(principal: Principal = Depends(_patient_scope)) -> Principal:
    """The woman herself (a `patient:self` token): `sub` is the keyed hash of her BSN, all she may read by."""
    if principal.org_id != PATIENT_ORG_ID or not PATIENT_REF_FORMAT.fullmatch(principal.sub):
        raise Forbidden("a patient token must name her by the keyed hash of her BSN")
    return principal


def required_scopes(dependant: Any) -> set[str]:
    """The scopes a route's dependencies demand (from `require_scope`), searched through the whole tree."""
    scope = getattr(dependant.call, "required_scope", None)
    found = {scope} if isinstance(scope, str) else set()
    for sub in dependant.dependencies:
        found |= required_scopes(sub)
    return found
