"""Settings: one pydantic-settings class per service on this shared base, read from `KANSRIJK_*`."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Values that ship as examples; a deployment that still carries one has forgotten to configure it.
PLACEHOLDER_SECRETS = frozenset({"changethis", "changeme", "guest", "secret", "password", "postgres", "kansrijk"})


DEFAULT_PORTS = {"consent": 8001, "melding": 8002, "routing": 8003}


class Environment(StrEnum):
    development = "development"
    production = "production"


class ServiceSettings(BaseSettings):
    """What every service reads. Subclasses add their own database URL and port."""

    model_config = SettingsConfigDict(env_prefix="KANSRIJK_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = ""
    default_port: ClassVar[int] = 0

    environment: Environment = Environment.development
    data_dir: Path = Path("./var")
    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    # A RabbitMQ cluster's nodes (`host:port,host:port,…`): connections go to each in turn, and to the next
    # when one is lost; the user, password, vhost and options come from `amqp_url`. Empty: `amqp_url`'s host.
    amqp_nodes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"

    # Authentication. In development the services trust a key pair generated under the data dir;
    # in production they trust `jwt_public_key` (PEM) or the keys published at `jwt_jwks_url`.
    jwt_issuer: str = "kansrijk-dev"
    jwt_audience: str = "kansrijk"
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwks_cache_seconds: int = 300

    # Personal data at rest (shared.crypto). `encryption_keys`: `kid=base64key,…`, the first encrypts new
    # writes, all decrypt (rotation: put a new key first, keep the old ones). `bsn_hash_key`: base64, for
    # lookups by BSN. In development both are generated under the data dir.
    encryption_keys: str | None = Field(None, repr=False)
    bsn_hash_key: str | None = Field(None, repr=False)

    # PostgreSQL connections of one process: kept, and opened beyond that for a burst. Every process of
    # every service counts against the server's max_connections (100 by default): size per deployment.
    database_pool_size: int = Field(10, ge=1)
    database_max_overflow: int = Field(10, ge=0)
    # How long a request waits for a free connection when all are in use; then it is answered 503 with
    # Retry-After (never 500): the client retries, the service is not overrun.
    database_pool_timeout_seconds: float = Field(10.0, gt=0)

    # Outbox relay
    outbox_batch_size: int = 100
    # The relay publishes what its own process commits at once (the hand-off); its sweep, which publishes
    # what a crash or a failed publish left, runs every `outbox_sweep_seconds` (default: the lease).
    outbox_sweep_seconds: float | None = Field(None, gt=0)
    # A confirm from a healthy broker takes milliseconds. The lease is how long a relay that died holding
    # rows delays them (another relay takes them over after it); it is at least twice the publish timeout.
    publish_timeout_seconds: float = 5.0
    outbox_lease_seconds: float = 12.0
    # The fault suite only (refused outside development): the process kills itself (SIGKILL) right after
    # the first COMMIT that staged a message, before its relay publishes it - the sweep must deliver it.
    fault_kill_after_commit: bool = False
    # `kansrijk serve --no-workers` (the API apart from its worker): the API process still publishes what it
    # commits itself (its relay takes hand-offs and does not sweep; the worker's relay sweeps).
    outbox_hand_off_in_api: bool = True

    # Event consumers (shared.messaging.consumer): a consumer applies what its prefetch holds, up to
    # `consumer_batch_size` messages, in one transaction, waiting at most `consumer_batch_wait_ms` for more.
    consumer_batch_size: int = Field(50, ge=1)
    consumer_batch_wait_ms: float = Field(5.0, ge=0)
    # A consumer that keeps a view up to date rather than moving a melding on (the melding service's record of
    # what became of its meldingen, the FHIR facade's changes) waits longer for a fuller batch: no one waits on
    # it by the millisecond, and at a moderate rate a batch of one per transaction is most of its CPU.
    consumer_view_batch_wait_ms: float = Field(50.0, ge=0)

    # The consent feed (shared.consent_feed): the consent service sends `consent.heartbeat` every
    # `consent_heartbeat_seconds` (0: none); the melding service decides on its own record of consents, and routing
    # on its own record of withdrawals, while the last heartbeat they applied is at most
    # `consent_feed_max_lag_seconds` old, and ask the consent service otherwise (0: always ask).
    consent_heartbeat_seconds: float = Field(1.0, ge=0)
    consent_feed_max_lag_seconds: float = Field(2.0, ge=0)

    # Housekeeping (shared.retention): how long rows that served delivery or deduplication are kept.
    outbox_retention_hours: float = 168.0
    processed_retention_hours: float = 168.0
    idempotency_retention_hours: float = 48.0
    prune_interval_seconds: float = 3600.0
    # Purpose-bound retention: a melding's personal data goes this long after its expected due date.
    personal_data_retention_days: int = Field(365, ge=1)

    # The other services' base URLs, for `POST /v1/audit/_search` across all three (JSON, e.g.
    # {"melding": "http://melding:8002"}); default: 127.0.0.1 on their KANSRIJK_<NAME>_PORT.
    audit_peers: dict[str, str] = Field(default_factory=dict)

    # HTTP limits of every service (shared.server): a body over `max_body_bytes` is refused with 413 before
    # it is read; a client gets `http_request_timeout_seconds` to send a whole request (head and body), so a
    # slow client cannot hold a connection open (slowloris); an idle keep-alive connection closes after
    # `http_keep_alive_seconds`; beyond `http_max_connections` open connections a process answers 503.
    max_body_bytes: int = Field(1_048_576, ge=1024)
    http_request_timeout_seconds: float = Field(30.0, gt=0)
    http_keep_alive_seconds: int = Field(5, ge=1)
    http_max_connections: int = Field(1000, ge=10)
    # The expensive endpoints (shared.edge `@expensive`: a FHIR Bundle, the FHIR Task search, the recipient's
    # message feed, the figures) run at most this many requests of one organisation at once, per process;
    # one more is answered 429 with Retry-After.
    expensive_requests_per_org: int = Field(4, ge=1)

    # Traces (shared.tracing): `none` makes no spans; `otlp` exports over OTLP/HTTP to
    # `tracing_otlp_endpoint` (or the standard OTEL_EXPORTER_OTLP_* variables); `console` prints them.
    tracing_exporter: Literal["none", "otlp", "console"] = "none"
    tracing_otlp_endpoint: str | None = None

    database_url: str = ""
    port: int = 0
    host: str = "127.0.0.1"

    @field_validator("amqp_nodes", mode="before")
    @classmethod
    def _node_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [node.strip() for node in value.split(",") if node.strip()]
        return value

    @field_validator("amqp_nodes")
    @classmethod
    def _host_and_port(cls, nodes: list[str]) -> list[str]:
        for node in nodes:
            host, _, port = node.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"a node is host:port, not {node!r}")
        return nodes

    @property
    def is_development(self) -> bool:
        return self.environment is Environment.development

    @model_validator(mode="after")
    def _idempotency_kept_a_day(self) -> ServiceSettings:
        if self.idempotency_retention_hours < 24:
            raise ValueError("idempotency keys must be kept at least 24 hours (the contract)")
        return self

    @property
    def dev_key_dir(self) -> Path:
        return self.data_dir / "keys"

    @model_validator(mode="after")
    def _fill_defaults_and_refuse_placeholders(self) -> ServiceSettings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / (self.service_name + '.db')}"
        if not self.port:
            self.port = self.default_port
        for name, default_port in DEFAULT_PORTS.items():
            if name != self.service_name and name not in self.audit_peers:
                port = os.environ.get(f"KANSRIJK_{name.upper()}_PORT", str(default_port))
                self.audit_peers[name] = f"http://127.0.0.1:{port}"
        if self.fault_kill_after_commit and not self.is_development:
            raise ValueError("KANSRIJK_FAULT_KILL_AFTER_COMMIT is for the fault suite, in development only")
        if not self.is_development:
            for name, url in (("amqp_url", self.amqp_url), ("database_url", self.database_url)):
                password = urlsplit(url).password
                if password is not None and password.lower() in PLACEHOLDER_SECRETS:
                    raise ValueError(f"{name} carries a placeholder password; set a real secret in production")
            if not (self.jwt_public_key or self.jwt_jwks_url):
                raise ValueError("production needs KANSRIJK_JWT_PUBLIC_KEY or KANSRIJK_JWT_JWKS_URL")
            if not (self.encryption_keys and self.bsn_hash_key):
                raise ValueError("production needs KANSRIJK_ENCRYPTION_KEYS and KANSRIJK_BSN_HASH_KEY")
            if self.jwt_issuer == "kansrijk-dev":
                raise ValueError("production needs KANSRIJK_JWT_ISSUER set to the real token issuer")
        return self


class CallsConsentService(ServiceSettings):
    """Settings of a service that asks the consent service whether a melding may go out."""

    consent_port: int = Field(8001, validation_alias=AliasChoices("KANSRIJK_CONSENT_PORT"))
    consent_url: str = Field("", description="default: http://127.0.0.1:<KANSRIJK_CONSENT_PORT>")
    consent_timeout_seconds: float = 5.0
    # Production: the PEM private key (or its path) this service signs its own tokens with; its public
    # key must be trusted by the consent service (through the issuer's JWKS).
    service_token_key: str | None = None
    service_token_kid: str | None = None

    @model_validator(mode="after")
    def _consent_url_default(self) -> CallsConsentService:
        if not self.consent_url:
            self.consent_url = f"http://127.0.0.1:{self.consent_port}"
        return self
