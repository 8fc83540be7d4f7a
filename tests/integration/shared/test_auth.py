"""Authentication and authorisation exactly as the contract says: 401 for a bad token, 403 for a missing scope."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest

from shared.auth import (
    DevelopmentOnly,
    SigningKey,
    TokenVerifier,
    development_token,
    issue_token,
    jwks_document,
    load_or_create_dev_key,
)
from shared.errors import Unauthorized
from shared.settings import ServiceSettings
from tests.samples import es256_key, production_settings
from tests.support import RunEnvironment, Tokens

BODY = {"bsn": "999999990"}
SEARCH = "/v1/consents/_search"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    values: dict[str, object] = {
        "iss": "kansrijk-dev",
        "aud": "kansrijk",
        "sub": "u",
        "org_id": "12345678",
        "org_type": "verloskundige",
        "scope": "consent:read",
        "iat": now,
        "exp": now + 300,
    }
    values.update(overrides)
    return values


def sign(key: SigningKey, **overrides: object) -> str:
    from jose import jwt

    token: str = jwt.encode(
        claims(**overrides), key.private_pem.decode(), algorithm=key.algorithm, headers={"kid": key.kid}
    )
    return token


async def assert_unauthorized(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, object]:
    response = await client.post(SEARCH, json=BODY, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    problem: dict[str, object] = response.json()
    assert problem["type"] == "urn:kansrijk:problem:unauthorized"
    return problem


async def test_a_valid_token_with_the_scope_is_accepted(consent_client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await consent_client.post(SEARCH, json=BODY, headers=tokens.bearer(scopes="consent:read"))
    assert response.status_code == 200, response.text


async def test_missing_token_is_401(consent_client: httpx.AsyncClient) -> None:
    await assert_unauthorized(consent_client, {})


@pytest.mark.parametrize("header", ["Bearer", "Bearer garbage", "Bearer a.b.c", "Basic Z3Vlc3Q6Z3Vlc3Q="])
async def test_garbage_is_401(consent_client: httpx.AsyncClient, header: str) -> None:
    await assert_unauthorized(consent_client, {"Authorization": header})


async def test_expired_token_is_401(consent_client: httpx.AsyncClient, environment: RunEnvironment) -> None:
    now = int(time.time())
    token = sign(environment.dev_key, iat=now - 600, exp=now - 120)
    problem = await assert_unauthorized(consent_client, {"Authorization": f"Bearer {token}"})
    assert "expired" in str(problem["detail"])


async def test_token_without_exp_is_401(consent_client: httpx.AsyncClient, environment: RunEnvironment) -> None:
    from jose import jwt

    values = claims()
    del values["exp"]
    token = jwt.encode(values, environment.dev_key.private_pem.decode(), algorithm="RS256")
    await assert_unauthorized(consent_client, {"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("claim", [{"iss": "https://evil.example"}, {"aud": "another-api"}])
async def test_wrong_issuer_or_audience_is_401(
    consent_client: httpx.AsyncClient, environment: RunEnvironment, claim: dict[str, str]
) -> None:
    token = sign(environment.dev_key, **claim)
    await assert_unauthorized(consent_client, {"Authorization": f"Bearer {token}"})


async def test_token_signed_with_another_key_is_401(consent_client: httpx.AsyncClient, tmp_path: object) -> None:
    other = load_or_create_dev_key(tmp_path / "other-keys")  # type: ignore[operator]
    token = sign(other)
    await assert_unauthorized(consent_client, {"Authorization": f"Bearer {token}"})


async def test_alg_none_is_401(consent_client: httpx.AsyncClient) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(scope="consent:read")).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        await assert_unauthorized(consent_client, {"Authorization": f"Bearer {token}"})


async def test_hs256_signed_with_the_public_key_as_secret_is_401(
    consent_client: httpx.AsyncClient, environment: RunEnvironment
) -> None:
    """The classic key-confusion attack: HMAC with the (public) RSA key as the shared secret."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(scope="consent:read")).encode())
    signing_input = f"{header}.{payload}".encode()
    for secret in (environment.dev_key.public_pem, environment.dev_key.public_pem.strip()):
        signature = b64(hmac.new(secret, signing_input, hashlib.sha256).digest())
        token = f"{header}.{payload}.{signature}"
        await assert_unauthorized(consent_client, {"Authorization": f"Bearer {token}"})


async def test_token_with_an_unknown_org_type_is_401(
    consent_client: httpx.AsyncClient, environment: RunEnvironment
) -> None:
    token = sign(environment.dev_key, org_type="apotheek")
    await assert_unauthorized(consent_client, {"Authorization": f"Bearer {token}"})


async def test_token_without_org_id_is_401(consent_client: httpx.AsyncClient, environment: RunEnvironment) -> None:
    token = sign(environment.dev_key, org_id="")
    await assert_unauthorized(consent_client, {"Authorization": f"Bearer {token}"})


async def test_missing_scope_is_403(consent_client: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await consent_client.post(SEARCH, json=BODY, headers=tokens.bearer(scopes="consent:write melding:read"))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:kansrijk:problem:forbidden"
    assert "consent:read" in response.json()["detail"]


async def test_auth_is_checked_before_the_body_is_looked_at(consent_client: httpx.AsyncClient) -> None:
    """An unauthenticated caller learns nothing about validation rules."""
    response = await consent_client.post("/v1/consents", json={"nonsense": True})
    assert response.status_code == 401


# --- the verifier on its own: production key settings -------------------------------------------------


async def test_es256_token_verifies_against_a_configured_public_key(tmp_path: object) -> None:
    key = es256_key()
    verifier = TokenVerifier(production_settings(tmp_path, jwt_public_key=key.public_pem.decode()))
    token = issue_token(
        key,
        issuer="https://issuer.example",
        audience="kansrijk",
        org_id="11112222",
        org_type="jgz",
        scopes="delivery:read",
    )
    principal = await verifier.verify(token)
    assert (principal.org_id, principal.org_type, principal.scopes) == ("11112222", "jgz", frozenset({"delivery:read"}))


async def test_tokens_verify_against_a_jwks_url_fetched_once_and_cached(tmp_path: object) -> None:
    key = es256_key()
    fetches = 0

    def issuer(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        return httpx.Response(200, json=jwks_document([key]))

    http = httpx.AsyncClient(transport=httpx.MockTransport(issuer))
    verifier = TokenVerifier(production_settings(tmp_path, jwt_jwks_url="https://issuer.example/jwks"), http=http)
    for _ in range(3):
        token = issue_token(
            key,
            issuer="https://issuer.example",
            audience="kansrijk",
            org_id="1",
            org_type="huisarts",
            scopes="melding:write",
        )
        assert (await verifier.verify(token)).org_type == "huisarts"
    assert fetches == 1
    stranger = es256_key()
    with pytest.raises(Unauthorized):
        await verifier.verify(
            issue_token(
                stranger,
                issuer="https://issuer.example",
                audience="kansrijk",
                org_id="1",
                org_type="huisarts",
                scopes="",
            )
        )


async def test_a_rotated_issuer_key_is_fetched_once_and_unknown_kids_cannot_make_us_hammer_the_issuer(
    tmp_path: object,
) -> None:
    old, new = es256_key(), SigningKey(**{**es256_key().__dict__, "kid": "es-2"})
    published, fetches = [old], 0

    def issuer(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        return httpx.Response(200, json=jwks_document(published))

    verifier = TokenVerifier(
        production_settings(tmp_path, jwt_jwks_url="https://issuer.example/jwks"),
        http=httpx.AsyncClient(transport=httpx.MockTransport(issuer)),
    )

    def token(key: SigningKey) -> str:
        return issue_token(
            key,
            issuer="https://issuer.example",
            audience="kansrijk",
            org_id="1",
            org_type="huisarts",
            scopes="melding:write",
        )

    await verifier.verify(token(old))
    assert fetches == 1
    published = [new, old]  # the issuer rotates
    for _ in range(5):  # within the rate limit an unknown kid is refused without asking the issuer again
        with pytest.raises(Unauthorized):
            await verifier.verify(token(new))
    assert fetches == 1
    verifier._jwks_fetched_at -= 31  # the rate limit's 30 s have passed
    assert (await verifier.verify(token(new))).org_id == "1"
    assert (await verifier.verify(token(old))).org_id == "1"  # the old key still verifies
    assert fetches == 2  # exactly one refetch for the new kid
    forged = SigningKey(**{**es256_key().__dict__, "kid": "es-9"})
    for _ in range(5):
        with pytest.raises(Unauthorized):
            await verifier.verify(token(forged))
    assert fetches == 2  # just after a fetch, unknown kids do not trigger another


def test_production_needs_encryption_keys(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="ENCRYPTION_KEYS"):
        production_settings(tmp_path, jwt_public_key="x", encryption_keys=None)


def test_production_refuses_placeholder_secrets(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        production_settings(tmp_path, jwt_public_key="x", amqp_url="amqp://guest:guest@mq/")
    with pytest.raises(ValueError, match="placeholder"):
        production_settings(tmp_path, jwt_public_key="x", database_url="postgresql+asyncpg://k:changethis@db/k")
    with pytest.raises(ValueError, match="JWKS"):
        production_settings(tmp_path)
    # development accepts the local defaults
    assert ServiceSettings(amqp_url="amqp://guest:guest@localhost/").is_development


@pytest.mark.parametrize("case", ["lifetime over 12 hours", "issued in the future", "not yet valid", "without iat"])
async def test_token_lifetime_iat_and_nbf_are_honoured(tmp_path: object, case: str) -> None:
    key = es256_key()
    verifier = TokenVerifier(production_settings(tmp_path, jwt_public_key=key.public_pem.decode()))
    now = int(time.time())
    by_case: dict[str, dict[str, object]] = {
        "lifetime over 12 hours": {"iat": now, "exp": now + 12 * 3600 + 120},
        "issued in the future": {"iat": now + 600, "exp": now + 900},
        "not yet valid": {"nbf": now + 600},
        "without iat": {"iat": None},
    }
    overrides = by_case[case]
    values = claims(iss="https://issuer.example", **overrides)
    values = {k: v for k, v in values.items() if v is not None}
    from jose import jwt

    token = jwt.encode(values, key.private_pem.decode(), algorithm=key.algorithm, headers={"kid": key.kid})
    with pytest.raises(Unauthorized):
        await verifier.verify(token)
    # the same token within the limits is accepted: the check above is about the one claim
    fine = jwt.encode(
        claims(iss="https://issuer.example"),
        key.private_pem.decode(),
        algorithm=key.algorithm,
        headers={"kid": key.kid},
    )
    assert (await verifier.verify(fine)).org_id == "12345678"


# --- malformed headers and claims are 401, never a 500 -----------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        {"alg": ["RS256"]},
        {"alg": {"RS256": 1}},
        {"alg": None},
        {"alg": 256},
        {"alg": "RS256", "kid": ["x"]},
        {"alg": "RS256", "kid": {"a": 1}},
    ],
)
async def test_a_header_whose_alg_or_kid_is_not_a_string_is_401(
    consent_client: httpx.AsyncClient, header: dict[str, object]
) -> None:
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}.{b64(b'sig')}"
    await assert_unauthorized(consent_client, {"Authorization": f"Bearer {token}"})


async def test_a_list_kid_is_401_with_a_jwks_url_too(tmp_path: object) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200, json={"keys": []})))
    verifier = TokenVerifier(production_settings(tmp_path, jwt_jwks_url="https://issuer.example/jwks"), http=http)
    token = f"{b64(json.dumps({'alg': 'ES256', 'kid': ['x']}).encode())}.{b64(json.dumps(claims()).encode())}.c2ln"
    with pytest.raises(Unauthorized):
        await verifier.verify(token)


@pytest.mark.parametrize(
    "claim",
    [
        {"org_id": "1" * 65},
        {"sub": "u" * 201},
        {"org_id": "1234\x005678"},
        {"sub": "dr.\x00jansen"},
        {"org_id": "12 34"},
        {"sub": "\ud800"},
        {"scope": "consent:read\x00"},
    ],
)
async def test_a_signed_token_with_an_oversized_or_unstorable_claim_is_401(
    consent_client: httpx.AsyncClient, environment: RunEnvironment, claim: dict[str, str]
) -> None:
    token = sign(environment.dev_key, **claim)
    await assert_unauthorized(consent_client, {"Authorization": f"Bearer {token}"})


# --- who may hold which scope (docs/security.md) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("org_type", "scope", "allowed"),
    [
        ("verloskundige", "consent:write", True),
        ("huisarts", "consent:read", True),
        ("jgz", "consent:write", False),
        ("wijkteam", "consent:read", False),
        ("operator", "consent:write", False),
        ("service", "consent:check", True),
        ("verloskundige", "consent:check", False),
        ("operator", "consent:check", False),
        ("operator", "audit:read", True),
        ("verloskundige", "audit:read", True),
        ("service", "audit:read", False),
    ],
)
async def test_each_scope_is_honoured_only_for_the_org_types_that_may_hold_it(
    consent_client: httpx.AsyncClient, tokens: Tokens, org_type: str, scope: str, allowed: bool
) -> None:
    calls = {
        "consent:write": (
            "POST",
            "/v1/consents",
            {"patient": {"bsn": "999999990"}, "recipient_types": ["jgz"], "method": "verbal", "given_at": "2026-11-01"},
        ),
        "consent:read": ("POST", SEARCH, BODY),
        "consent:check": (
            "POST",
            "/v1/consents/check",
            {
                "consent_id": "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10",
                "bsn": "999999990",
                "org_id": "12345678",
                "recipient_types": ["jgz"],
            },
        ),
        "audit:read": ("GET", "/v1/audit", None),
    }
    method, path, body = calls[scope]
    response = await consent_client.request(
        method, path, json=body, headers=tokens.bearer(org_type=org_type, scopes=scope)
    )
    if allowed:
        assert response.status_code in (200, 201), response.text
    else:
        assert response.status_code == 403, response.text
        assert f"type {org_type} may not use the scope {scope}" in response.json()["detail"]


async def test_an_organisation_reads_only_the_audit_records_of_its_own_accesses(
    consent_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    mine, theirs = "10000001", "10000002"
    for org_id in (mine, theirs):
        await consent_client.post(SEARCH, json=BODY, headers=tokens.bearer(org_id=org_id, scopes="consent:read"))
    own = tokens.bearer(org_id=mine, scopes="audit:read")
    records = (await consent_client.get("/v1/audit", headers=own)).json()["items"]
    assert records and {r["actor_org_id"] for r in records} == {mine}
    refused = await consent_client.get("/v1/audit", params={"org_id": theirs}, headers=own)
    assert refused.status_code == 403
    searched = (
        await consent_client.post("/v1/audit/_search", json={"bsn": "999999990", "services": ["consent"]}, headers=own)
    ).json()["items"]
    assert searched and {r["actor_org_id"] for r in searched} == {mine}
    operator = tokens.bearer(org_id="ops", org_type="operator", scopes="audit:read")
    everyone = (await consent_client.get("/v1/audit", headers=operator)).json()["items"]
    assert {mine, theirs} <= {r["actor_org_id"] for r in everyone}


async def test_a_development_token_verifies_in_development_and_is_refused_outside_it(tmp_path: object) -> None:
    """The one way the CLI, demo, benchmark and tests mint a token: accepted by a development service."""
    settings = ServiceSettings(data_dir=tmp_path)
    token = development_token(settings, org_id="11112222", org_type="jgz", scopes=["delivery:read"], sub="me")
    principal = await TokenVerifier(settings).verify(token)
    assert (principal.org_id, principal.org_type, principal.sub) == ("11112222", "jgz", "me")
    with pytest.raises(DevelopmentOnly):
        development_token(
            production_settings(tmp_path, jwt_public_key=es256_key().public_pem.decode()),
            org_id="11112222",
            org_type="jgz",
            scopes="delivery:read",
        )
