"""Consent service settings."""

from typing import ClassVar

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class ConsentSettings(ServiceSettings):
    service_name: ClassVar[str] = "consent"
    default_port: ClassVar[int] = 8001

    database_url: str = Field("", validation_alias=AliasChoices("KANSRIJK_CONSENT_DATABASE_URL"))
    port: int = Field(0, validation_alias=AliasChoices("KANSRIJK_CONSENT_PORT"))
