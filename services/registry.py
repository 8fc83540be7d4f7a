"""The services that exist, for the CLI: the composition root is the only place that knows them all.

Each service's parts are imported explicitly (a reader and a linter can follow them), and lazily, inside its
loader, so that `kansrijk token` does not load every service; its settings class apart from the rest, so that
`kansrijk up` reads the ports without importing the web and database stack its children import anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from shared.settings import ServiceSettings

if TYPE_CHECKING:
    from shared.audit import AuditTables
    from shared.db import Database
    from shared.retention import Retention

Purge = Callable[["Database", Any, bool], Awaitable[dict[str, int]]]


@dataclass(frozen=True)
class ServiceParts:
    create_app: Callable[..., Any]
    audit: AuditTables
    retention_rules: Callable[[ServiceSettings], list[Retention]]
    purge: Purge  # its personal data that is due: (database, settings, dry_run) -> counts per kind


def _consent() -> ServiceParts:
    from services.consent.adapters.orm import audit
    from services.consent.main import create_app
    from services.consent.service_layer import retention
    from services.consent.service_layer.unit_of_work import unit_of_work_factory
    from services.consent.worker import rules

    async def purge(database: Database, settings: Any, dry_run: bool) -> dict[str, int]:
        return await retention.purge(unit_of_work_factory(database), settings, dry_run=dry_run)

    return ServiceParts(create_app, audit, rules, purge)


def _melding() -> ServiceParts:
    from services.melding.adapters.orm import audit
    from services.melding.main import create_app
    from services.melding.service_layer import retention
    from services.melding.service_layer.unit_of_work import unit_of_work_factory
    from services.melding.worker import rules

    async def purge(database: Database, settings: Any, dry_run: bool) -> dict[str, int]:
        return await retention.purge(unit_of_work_factory(database), settings, dry_run=dry_run)

    return ServiceParts(create_app, audit, rules, purge)


def _routing() -> ServiceParts:
    from services.routing.adapters.orm import audit
    from services.routing.main import create_app
    from services.routing.service_layer import retention
    from services.routing.service_layer.unit_of_work import unit_of_work_factory
    from services.routing.worker import rules

    async def purge(database: Database, settings: Any, dry_run: bool) -> dict[str, int]:
        return await retention.purge(unit_of_work_factory(database), settings, dry_run=dry_run)

    return ServiceParts(create_app, audit, rules, purge)


def _fhir() -> ServiceParts:
    from services.fhir.adapters.orm import audit
    from services.fhir.main import create_app
    from services.fhir.worker import rules

    async def purge(_database: Database, _settings: Any, _dry_run: bool) -> dict[str, int]:
        return {}  # the facade keeps no personal data: the v1 services hold it

    return ServiceParts(create_app, audit, rules, purge)


def _consent_settings() -> type[ServiceSettings]:
    from services.consent.config import ConsentSettings

    return ConsentSettings


def _melding_settings() -> type[ServiceSettings]:
    from services.melding.config import MeldingSettings

    return MeldingSettings


def _routing_settings() -> type[ServiceSettings]:
    from services.routing.config import RoutingSettings

    return RoutingSettings


def _fhir_settings() -> type[ServiceSettings]:
    from services.fhir.config import FhirSettings

    return FhirSettings


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    loader: Callable[[], ServiceParts]
    settings_class: Callable[[], type[ServiceSettings]]

    @property
    def parts(self) -> ServiceParts:
        return _loaded(self.loader)

    def settings(self, **overrides: Any) -> Any:
        return self.settings_class()(**overrides)

    def app_factory(self) -> Callable[..., Any]:
        return self.parts.create_app


@cache
def _loaded(loader: Callable[[], ServiceParts]) -> ServiceParts:
    return loader()


SERVICES: dict[str, ServiceEntry] = {
    "consent": ServiceEntry("consent", _consent, _consent_settings),
    "melding": ServiceEntry("melding", _melding, _melding_settings),
    "routing": ServiceEntry("routing", _routing, _routing_settings),
    "fhir": ServiceEntry("fhir", _fhir, _fhir_settings),
}


# --- web pages beside the services: no database, no broker, no audit log of their own ------------------------


@dataclass(frozen=True)
class WebEntry:
    """A web application of the platform that reads the services' APIs (the portal): served like a service,
    but it has no migrations, workers or personal data to purge."""

    name: str
    loader: Callable[[], Callable[..., Any]]
    settings_class: Callable[[], type[ServiceSettings]]

    def settings(self, **overrides: Any) -> Any:
        return self.settings_class()(**overrides)

    def app_factory(self) -> Callable[..., Any]:
        return self.loader()


def _portal_app() -> Callable[..., Any]:
    from services.portal.main import create_app

    return create_app


def _portal_settings() -> type[ServiceSettings]:
    from services.portal.config import PortalSettings

    return PortalSettings


WEB: dict[str, WebEntry] = {"portal": WebEntry("portal", _portal_app, _portal_settings)}
