"""Login with DigiD through an OpenID Connect provider (a broker, NL GOV profile), by authlib: the authorization
code flow with PKCE (S256), `state` and `nonce`, the ID token verified against the provider's keys; and
RP-initiated logout. The portal authenticates itself at the token endpoint with its client secret, or with
`private_key_jwt` (a JWT signed with its private key, as the NL GOV profile prefers) when it has a key."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from authlib.integrations.starlette_client import OAuth, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from starlette.requests import Request
from starlette.responses import RedirectResponse

__all__ = ["OAuthError", "Provider"]


class Provider:
    def __init__(
        self, *, issuer: str, client_id: str, client_secret: str, private_key_pem: str = "", scope: str = "openid"
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._oauth = OAuth()
        client_kwargs: dict[str, Any] = {"scope": scope, "code_challenge_method": "S256"}
        authentication: dict[str, Any] = {"client_secret": client_secret}
        if private_key_pem:  # private_key_jwt: the key signs a client assertion (RS256), no shared secret
            client_kwargs["token_endpoint_auth_method"] = PrivateKeyJWT.name
            authentication = {"client_secret": private_key_pem, "client_auth_methods": [PrivateKeyJWT()]}
        self._oauth.register(
            "provider",
            client_id=client_id,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs=client_kwargs,
            **authentication,
        )

    @property
    def _client(self) -> Any:
        return self._oauth.create_client("provider")

    async def start_login(self, request: Request, redirect_uri: str) -> RedirectResponse:
        """To the provider; `state`, `nonce` and the PKCE verifier wait in her (server-side) session."""
        response: RedirectResponse = await self._client.authorize_redirect(request, redirect_uri)
        return response

    async def finish_login(self, request: Request) -> tuple[dict[str, Any], str]:
        """The verified ID token's claims (state, PKCE and nonce checked) and the raw ID token (for logout)."""
        token = await self._client.authorize_access_token(request)
        return dict(token["userinfo"]), str(token.get("id_token", ""))

    async def logout_url(self, id_token: str, post_logout_redirect_uri: str) -> str | None:
        """The provider's end-session address for her (RP-initiated logout), if it has one."""
        metadata = await self._client.load_server_metadata()
        endpoint = metadata.get("end_session_endpoint")
        if not endpoint:
            return None
        query = {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        if id_token:
            query["id_token_hint"] = id_token
        return f"{endpoint}?{urlencode(query)}"
