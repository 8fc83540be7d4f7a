"""Melding service settings."""

from typing import ClassVar

from pydantic import AliasChoices, Field

from shared.settings import CallsConsentService


class MeldingSettings(CallsConsentService):
    service_name: ClassVar[str] = "melding"
    default_port: ClassVar[int] = 8002

    database_url: str = Field("", validation_alias=AliasChoices("KANSRIJK_MELDING_DATABASE_URL"))
    port: int = Field(0, validation_alias=AliasChoices("KANSRIJK_MELDING_PORT"))
