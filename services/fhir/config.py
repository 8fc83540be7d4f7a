"""FHIR facade settings: where the v1 APIs it speaks for are."""

from typing import ClassVar

from pydantic import AliasChoices, Field, model_validator

from services.fhir.domain.endpoint import EndpointPolicy
from shared.settings import ServiceSettings


class FhirSettings(ServiceSettings):
    service_name: ClassVar[str] = "fhir"
    default_port: ClassVar[int] = 8004

    database_url: str = Field("", validation_alias=AliasChoices("KANSRIJK_FHIR_DATABASE_URL"))
    port: int = Field(0, validation_alias=AliasChoices("KANSRIJK_FHIR_PORT"))

    consent_port: int = Field(8001, validation_alias=AliasChoices("KANSRIJK_CONSENT_PORT"))
    melding_port: int = Field(8002, validation_alias=AliasChoices("KANSRIJK_MELDING_PORT"))
    consent_url: str = Field("", description="default: http://127.0.0.1:<KANSRIJK_CONSENT_PORT>")
    melding_url: str = Field("", description="default: http://127.0.0.1:<KANSRIJK_MELDING_PORT>")
    # A melding's Bundle is a few kilobytes (about 12 with every field at its longest, escaped): 64 KiB holds
    # any real one with room to spare, and keeps the facade from parsing megabytes of FHIR for a client.
    max_body_bytes: int = Field(65_536, ge=1024, validation_alias=AliasChoices("KANSRIJK_FHIR_MAX_BODY_BYTES"))

    # How long the facade waits for a v1 API; a melding's intake itself waits for the consent check.
    v1_timeout_seconds: float = Field(15.0, gt=0)

    # Subscriptions: where EHRs reach the facade (the URLs in notifications; default http://<host>:<port>/fhir),
    # how often the notifier looks for work, how long an endpoint gets to answer, and how long a notification
    # is retried (with backoff) before its Subscription goes to `error`. A lease: how long a notifier that
    # died while sending holds its notifications.
    public_url: str = ""
    notification_poll_seconds: float = Field(5.0, gt=0)  # retries and heartbeats; a new notification wakes it
    notification_timeout_seconds: float = Field(5.0, gt=0)
    notification_retry_hours: float = Field(24.0, gt=0)
    notification_lease_seconds: float = Field(30.0, gt=0)
    # Isolation: what one sender's Subscriptions may take of the notifier. Attempts in flight at once (in
    # all, and per organisation; one per Subscription always), answers read up to a few KB and dropped,
    # Subscriptions per organisation, and the shortest heartbeatPeriod taken.
    notification_concurrency: int = Field(32, ge=1)
    notification_concurrency_per_organisation: int = Field(2, ge=1)
    subscriptions_per_organisation: int = Field(10, ge=1)
    subscription_min_heartbeat_seconds: int = Field(60, ge=1)
    # SSRF: when set, the only hosts an endpoint may name (`ehr.example.nl`, `*.example.nl`); comma-separated.
    subscription_endpoint_hosts: str = ""

    def endpoint_policy(self) -> EndpointPolicy:
        """Where notifications may go: outside development only public https addresses."""
        hosts = tuple(h.strip() for h in self.subscription_endpoint_hosts.split(",") if h.strip())
        return EndpointPolicy(development=self.is_development, allowed_hosts=hosts)

    @model_validator(mode="after")
    def _v1_url_defaults(self) -> "FhirSettings":
        if not self.consent_url:
            self.consent_url = f"http://127.0.0.1:{self.consent_port}"
        if not self.melding_url:
            self.melding_url = f"http://127.0.0.1:{self.melding_port}"
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.port or self.default_port}/fhir"
        return self
