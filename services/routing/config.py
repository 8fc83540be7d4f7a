"""Routing service settings."""

from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field

from shared.settings import CallsConsentService

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}


@dataclass(frozen=True)
class PublicBroker:
    """The RabbitMQ a recipient connects to for its queue: never its user or password (each recipient has
    its own, from the coalition's operators)."""

    protocol: str  # amqp, or amqps (TLS)
    host: str
    port: int
    vhost: str


def public_broker(amqp_url: str, *, host: str | None = None, port: int | None = None) -> PublicBroker:
    """Where recipients connect: `host` and `port` when given (the address they reach the broker on), else
    those of `amqp_url`; its protocol and virtual host always (read as the AMQP client reads them:
    no path or `/` is the default vhost `/`, `%2F` a slash)."""
    parts = urlsplit(amqp_url)
    protocol = parts.scheme if parts.scheme in DEFAULT_PORTS else "amqp"
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return PublicBroker(
        protocol=protocol,
        host=host or parts.hostname or "localhost",
        port=port or parts.port or DEFAULT_PORTS[protocol],
        vhost=unquote(path) if path else "/",
    )


DEFAULT_BROKER = public_broker("amqp://localhost:5672/")  # what docs/asyncapi.yaml names


class RoutingSettings(CallsConsentService):
    service_name: ClassVar[str] = "routing"
    default_port: ClassVar[int] = 8003

    database_url: str = Field("", validation_alias=AliasChoices("KANSRIJK_ROUTING_DATABASE_URL"))
    port: int = Field(0, validation_alias=AliasChoices("KANSRIJK_ROUTING_PORT"))
    reroute_interval_seconds: float = Field(5.0, description="waiting meldingen are routed again this often")
    overdue_interval_seconds: float = Field(
        15.0, gt=0, description="how often deliveries past their contact deadline are looked for (reminders)"
    )
    amqp_public_host: str | None = Field(
        None,
        min_length=1,
        description="the broker's host as recipients reach it (GET /v1/deliveries/queue, /asyncapi.json); "
        "default: the host of `amqp_url`",
    )
    amqp_public_port: int | None = Field(
        None, ge=1, le=65535, description="the broker's port as recipients reach it; default: that of `amqp_url`"
    )
    consent_recheck_after_seconds: float = Field(
        30.0,
        ge=0,
        description="a melding routed later than this after its intake check is checked with the consent "
        "service again; a fresher one against routing's own record of withdrawals (0: always ask)",
    )

    def public_broker(self) -> PublicBroker:
        return public_broker(self.amqp_url, host=self.amqp_public_host, port=self.amqp_public_port)
