"""How the portal proves itself at the provider's token endpoint: its client secret, or `private_key_jwt` (a
client assertion signed with its own key, as the NL GOV OpenID Connect profile prefers)."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from services.portal.adapters.oidc import Provider
from services.portal.config import PortalSettings
from tests.unit.portal.test_views import _production

ISSUER = "https://digid-broker.example.nl"
TOKEN_ENDPOINT = f"{ISSUER}/token"


def _token_request(provider: Provider) -> httpx.Request:
    """The token request the portal would send, authenticated as its client settings say."""
    session = provider._client._get_oauth_client()
    authentication = session.client_auth(session.token_endpoint_auth_method)
    request = httpx.Request(
        "POST",
        TOKEN_ENDPOINT,
        content=b"grant_type=authorization_code&code=abc",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    signed: httpx.Request = next(authentication.auth_flow(request))
    return signed


def test_with_a_private_key_the_token_request_carries_an_assertion_signed_by_it_and_no_secret() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    provider = Provider(issuer=ISSUER, client_id="kansrijk-portal", client_secret="", private_key_pem=private_pem)

    sent = _token_request(provider)

    form = {name: values[0] for name, values in parse_qs(sent.content.decode()).items()}
    assert "authorization" not in sent.headers and "client_secret" not in form
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    claims = jwt.decode(form["client_assertion"], public_pem, algorithms=["RS256"], audience=TOKEN_ENDPOINT)
    assert claims["iss"] == claims["sub"] == "kansrijk-portal" and claims["jti"] and claims["exp"] > claims["iat"]


def test_with_a_secret_the_token_request_authenticates_with_it() -> None:
    provider = Provider(issuer=ISSUER, client_id="kansrijk-portal", client_secret="s3cret")

    sent = _token_request(provider)

    scheme, _, credentials = sent.headers["authorization"].partition(" ")
    assert scheme == "Basic" and base64.b64decode(credentials).decode() == "kansrijk-portal:s3cret"
    assert "client_assertion" not in sent.content.decode()


def test_production_takes_a_private_key_instead_of_a_secret_but_not_neither(tmp_path: Path) -> None:
    production = {**_production(tmp_path), "oidc_issuer": ISSUER, "oidc_client_secret": ""}
    settings = PortalSettings(**production, oidc_private_key="/run/secrets/portal-oidc-key.pem")
    assert settings.oidc_private_key and not settings.oidc_client_secret
    with pytest.raises(ValueError, match="KANSRIJK_PORTAL_OIDC_CLIENT_SECRET or KANSRIJK_PORTAL_OIDC_PRIVATE_KEY"):
        PortalSettings(**production)
