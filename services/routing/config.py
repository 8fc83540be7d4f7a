"""Routing service settings."""

from typing import ClassVar

from pydantic import AliasChoices, Field

from shared.settings import CallsConsentService


class RoutingSettings(CallsConsentService):
    service_name: ClassVar[str] = "routing"
    default_port: ClassVar[int] = 8003

    database_url: str = Field("", validation_alias=AliasChoices("KANSRIJK_ROUTING_DATABASE_URL"))
    port: int = Field(0, validation_alias=AliasChoices("KANSRIJK_ROUTING_PORT"))
    reroute_interval_seconds: float = Field(5.0, description="waiting meldingen are routed again this often")
    overdue_interval_seconds: float = Field(
        15.0, gt=0, description="how often deliveries past their contact deadline are looked for (reminders)"
    )
    consent_recheck_after_seconds: float = Field(
        30.0,
        ge=0,
        description="a melding routed later than this after its intake check is checked with the consent "
        "service again; a fresher one against routing's own record of withdrawals (0: always ask)",
    )
