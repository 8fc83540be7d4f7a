"""Portal settings: the OpenID Connect provider she logs in with (DigiD through a broker), the services it reads."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, model_validator

from services.portal.domain.console import CONSOLE_SCOPES, DEFAULT_ROLE_SCOPES
from shared.settings import ServiceSettings

# Hosts of a provider that can only be a developer's own (the embedded one of `kansrijk up`): never production.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


class PortalSettings(ServiceSettings):
    service_name: ClassVar[str] = "portal"
    default_port: ClassVar[int] = 8005

    port: int = Field(0, validation_alias=AliasChoices("KANSRIJK_PORTAL_PORT"))
    # No broker: it only reads the services' APIs. Empty, so that production asks no AMQP credentials of it
    # (the shared default's `guest` password is refused there).
    amqp_url: str = ""
    # Where she reaches the portal (its redirect URI is `<public_url>/auth/callback`); default http://host:port.
    public_url: str = Field("", validation_alias=AliasChoices("KANSRIJK_PORTAL_PUBLIC_URL"))

    oidc_issuer: str = Field("", validation_alias=AliasChoices("KANSRIJK_PORTAL_OIDC_ISSUER"))
    oidc_client_id: str = Field("kansrijk-portal", validation_alias=AliasChoices("KANSRIJK_PORTAL_OIDC_CLIENT_ID"))
    oidc_client_secret: str = Field("", repr=False, validation_alias=AliasChoices("KANSRIJK_PORTAL_OIDC_CLIENT_SECRET"))
    # private_key_jwt instead of the secret (PEM or path; RS256): the provider holds the public key
    oidc_private_key: str = Field("", repr=False, validation_alias=AliasChoices("KANSRIJK_PORTAL_OIDC_PRIVATE_KEY"))
    bsn_claim: str = Field("bsn", validation_alias=AliasChoices("KANSRIJK_PORTAL_BSN_CLAIM"))
    loa_claim: str = Field("acr", validation_alias=AliasChoices("KANSRIJK_PORTAL_LOA_CLAIM"))

    # The console (/beheer/): people of an organisation sign in with their own provider (Entra ID, Keycloak);
    # a role in `console_roles_claim` grants the scopes `console_role_scopes` names for it. No issuer: no console.
    console_oidc_issuer: str = Field("", validation_alias=AliasChoices("KANSRIJK_CONSOLE_OIDC_ISSUER"))
    console_oidc_client_id: str = Field(
        "kansrijk-console", validation_alias=AliasChoices("KANSRIJK_CONSOLE_OIDC_CLIENT_ID")
    )
    console_oidc_client_secret: str = Field(
        "", repr=False, validation_alias=AliasChoices("KANSRIJK_CONSOLE_OIDC_CLIENT_SECRET")
    )
    console_roles_claim: str = Field("roles", validation_alias=AliasChoices("KANSRIJK_CONSOLE_ROLES_CLAIM"))
    console_org_claim: str = Field("org_id", validation_alias=AliasChoices("KANSRIJK_CONSOLE_ORG_CLAIM"))
    console_role_scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {role: list(scopes) for role, scopes in DEFAULT_ROLE_SCOPES.items()},
        validation_alias=AliasChoices("KANSRIJK_CONSOLE_ROLE_SCOPES"),
    )

    # The services it reads for her (default: 127.0.0.1 on their KANSRIJK_<NAME>_PORT).
    consent_url: str = Field("", validation_alias=AliasChoices("KANSRIJK_PORTAL_CONSENT_URL"))
    melding_url: str = Field("", validation_alias=AliasChoices("KANSRIJK_PORTAL_MELDING_URL"))
    routing_url: str = Field("", validation_alias=AliasChoices("KANSRIJK_PORTAL_ROUTING_URL"))
    service_timeout_seconds: float = 10.0
    # The key the portal signs her short-lived tokens with (PEM or path); the services trust it through the
    # issuer's JWKS. Development: the development key.
    service_token_key: str | None = None
    service_token_kid: str | None = None

    session_idle_seconds: int = Field(900, ge=60, le=3600)
    login_attempts_per_minute: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _defaults_and_a_real_issuer_in_production(self) -> PortalSettings:
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.port}"
        for name in ("consent", "melding", "routing"):
            if not getattr(self, f"{name}_url"):
                setattr(self, f"{name}_url", self.audit_peers.get(name, ""))
        if self.is_development and not self.oidc_client_secret and not self.oidc_private_key:
            self.oidc_client_secret = "development-only"  # what the embedded provider accepts; never production
        if self.is_development and not self.console_oidc_client_secret:
            self.console_oidc_client_secret = "development-only"
        for role, scopes in self.console_role_scopes.items():
            if unknown := set(scopes) - CONSOLE_SCOPES:
                raise ValueError(
                    f"KANSRIJK_CONSOLE_ROLE_SCOPES: role {role!r} names scopes the console does not "
                    f"grant: {sorted(unknown)}"
                )
        if not self.is_development:
            issuer = urlsplit(self.oidc_issuer)
            if issuer.scheme != "https" or not issuer.hostname or issuer.hostname in LOCAL_HOSTS:
                raise ValueError("production needs KANSRIJK_PORTAL_OIDC_ISSUER: the https address of a real provider")
            if not self.oidc_client_secret and not self.oidc_private_key:
                raise ValueError(
                    "production needs KANSRIJK_PORTAL_OIDC_CLIENT_SECRET or KANSRIJK_PORTAL_OIDC_PRIVATE_KEY"
                )
            if self.console_oidc_issuer:
                console = urlsplit(self.console_oidc_issuer)
                if console.scheme != "https" or not console.hostname or console.hostname in LOCAL_HOSTS:
                    raise ValueError("production needs KANSRIJK_CONSOLE_OIDC_ISSUER on https at a real provider")
                if not self.console_oidc_client_secret:
                    raise ValueError("production needs KANSRIJK_CONSOLE_OIDC_CLIENT_SECRET")
            if not self.service_token_key:
                raise ValueError("production needs KANSRIJK_SERVICE_TOKEN_KEY to sign her tokens")
            if urlsplit(self.public_url).scheme != "https":
                raise ValueError("production needs KANSRIJK_PORTAL_PUBLIC_URL on https")
        return self
