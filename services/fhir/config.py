"""FHIR facade settings: where the v1 APIs it speaks for are."""

from typing import ClassVar

from pydantic import AliasChoices, Field, model_validator

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
    # How long the facade waits for a v1 API; a melding's intake itself waits for the consent check.
    v1_timeout_seconds: float = Field(15.0, gt=0)

    @model_validator(mode="after")
    def _v1_url_defaults(self) -> "FhirSettings":
        if not self.consent_url:
            self.consent_url = f"http://127.0.0.1:{self.consent_port}"
        if not self.melding_url:
            self.melding_url = f"http://127.0.0.1:{self.melding_port}"
        return self
