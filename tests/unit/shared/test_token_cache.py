"""The verified-token cache (shared.auth.TokenVerifier): a token that verified is remembered by its hash until its
`exp` and, with a JWKS, while the key set it verified against stands; a token that did not verify never; and
remembering changes nothing of what is refused."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from jose import jwt as jose_jwt

import shared.auth
from shared.auth import SigningKey, TokenVerifier, issue_token, jwks_document
from shared.errors import Unauthorized
from tests.samples import es256_key, production_settings

ISSUER = "https://issuer.example"  # production_settings' issuer; its audience is the default, "kansrijk"


def token(key: SigningKey, *, org_id: str = "11112222", issuer: str = ISSUER, audience: str = "kansrijk") -> str:
    return issue_token(key, issuer=issuer, audience=audience, org_id=org_id, org_type="jgz", scopes="delivery:read")


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature and claims were checked, in order."""
    checked: list[str] = []
    real_decode = jose_jwt.decode

    def counting_decode(checked_token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(checked_token)
        return real_decode(checked_token, *args, **kwargs)

    monkeypatch.setattr(jose_jwt, "decode", counting_decode)  # the module shared.auth verifies with
    return checked


async def test_a_verified_token_is_remembered_by_its_hash_and_a_bad_one_never(
    tmp_path: object, decoded: list[str]
) -> None:
    key = es256_key()
    verifier = TokenVerifier(production_settings(tmp_path, jwt_public_key=key.public_pem.decode()))
    good = token(key)
    first, second = await verifier.verify(good), await verifier.verify(good)
    assert first == second and first.org_id == "11112222" and decoded == [good], "the second request skips the check"
    assert list(verifier._verified) == [hashlib.sha256(good.encode()).digest()], "looked up by the token's hash"

    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await verifier.verify(tampered)
    assert decoded == [good, tampered, tampered], "a token that did not verify is checked every time"


async def test_a_remembered_token_is_never_served_past_its_exp(
    tmp_path: object, decoded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = es256_key()
    verifier = TokenVerifier(production_settings(tmp_path, jwt_public_key=key.public_pem.decode()))
    good = token(key)
    await verifier.verify(good)
    expires = jose_jwt.get_unverified_claims(good)["exp"]

    # Our clock one second before its exp: still remembered.
    monkeypatch.setattr("shared.auth.time.time", lambda: expires - 1.0)
    await verifier.verify(good)
    assert decoded == [good]

    # Past its exp (and the leeway) on every clock: checked again, and refused.
    later = expires + shared.auth.CLOCK_LEEWAY_SECONDS + 1
    monkeypatch.setattr("shared.auth.time.time", lambda: float(later))
    monkeypatch.setattr(jose_jwt, "timegm", lambda _: later)  # python-jose's clock
    with pytest.raises(Unauthorized, match="expired"):
        await verifier.verify(good)
    assert decoded == [good, good] and not verifier._verified


async def test_a_token_for_another_audience_or_issuer_is_refused_however_many_tokens_are_remembered(
    tmp_path: object,
) -> None:
    key = es256_key()
    verifier = TokenVerifier(production_settings(tmp_path, jwt_public_key=key.public_pem.decode()))
    good = token(key)
    await verifier.verify(good)
    for stranger in (token(key, audience="another-platform"), token(key, issuer="https://other-issuer.example")):
        for _ in range(2):
            with pytest.raises(Unauthorized, match="issuer or audience"):
                await verifier.verify(stranger)
    # A service of another audience (its own verifier, its own memory) refuses the token this one remembers.
    elsewhere = TokenVerifier(
        production_settings(tmp_path, jwt_public_key=key.public_pem.decode(), jwt_audience="another-platform")
    )
    with pytest.raises(Unauthorized, match="issuer or audience"):
        await elsewhere.verify(good)
    assert len(verifier._verified) == 1 and not elsewhere._verified


async def test_the_remembered_tokens_are_bounded_and_the_least_recently_used_goes_first(
    tmp_path: object, decoded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared.auth, "VERIFIED_CACHE_SIZE", 2)
    key = es256_key()
    verifier = TokenVerifier(production_settings(tmp_path, jwt_public_key=key.public_pem.decode()))
    one, two, three = (token(key, org_id=f"1111000{n}") for n in (1, 2, 3))
    await verifier.verify(one)
    await verifier.verify(two)
    await verifier.verify(one)  # used again: `two` is now the least recently used
    await verifier.verify(three)
    assert len(verifier._verified) == 2
    decoded.clear()
    await verifier.verify(one)
    await verifier.verify(three)
    assert decoded == [], "the two most recently used are remembered"
    await verifier.verify(two)
    assert decoded == [two], "the least recently used was dropped"


async def test_a_key_the_issuer_removes_stops_a_remembered_token_at_the_next_refresh(
    tmp_path: object, decoded: list[str]
) -> None:
    old, new = es256_key("es-1"), es256_key("es-2")
    published = [old, new]

    def issuer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=jwks_document(published))

    verifier = TokenVerifier(
        production_settings(tmp_path, jwt_jwks_url=f"{ISSUER}/jwks", jwks_cache_seconds=300),
        http=httpx.AsyncClient(transport=httpx.MockTransport(issuer)),
    )
    signed_old, signed_new = token(old), token(new)
    for _ in range(2):
        await verifier.verify(signed_old)
        await verifier.verify(signed_new)
    assert decoded == [signed_old, signed_new], "remembered while the key set is current"

    verifier._jwks_fetched_at -= 301  # the key set is due for its refresh
    await verifier.verify(signed_new)  # refreshes it (unchanged) and is checked again
    await verifier.verify(signed_old)
    await verifier.verify(signed_new)
    assert decoded == [signed_old, signed_new, signed_new], "an unchanged key set keeps what verified against it"

    published = [new]  # the issuer removes a (stolen) key
    verifier._jwks_fetched_at -= 301
    assert (await verifier.verify(signed_new)).org_id == "11112222"
    with pytest.raises(Unauthorized):
        await verifier.verify(signed_old)
    assert hashlib.sha256(signed_old.encode()).digest() not in verifier._verified


async def test_a_token_verified_against_a_configured_key_needs_no_refresh(tmp_path: object, decoded: list[str]) -> None:
    key = es256_key()
    verifier = TokenVerifier(production_settings(tmp_path, jwt_public_key=key.public_pem.decode()))
    good = token(key)
    await verifier.verify(good)
    assert verifier._jwks_fetched_at == float("-inf"), "no key set was ever fetched: its age is unbounded"
    await verifier.verify(good)
    assert decoded == [good]
