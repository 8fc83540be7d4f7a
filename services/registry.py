"""The services that exist, for the CLI: the composition root is the only place that knows them all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    settings_path: str  # "module:Class"
    app_path: str  # "module:create_app"

    def settings(self, **overrides: Any) -> Any:
        module, attr = self.settings_path.split(":")
        return getattr(import_module(module), attr)(**overrides)

    def app_factory(self) -> Callable[..., Any]:
        module, attr = self.app_path.split(":")
        factory: Callable[..., Any] = getattr(import_module(module), attr)
        return factory


# Imported lazily so that `kansrijk token` does not load every service.
SERVICES: dict[str, ServiceEntry] = {
    "consent": ServiceEntry("consent", "services.consent.config:ConsentSettings", "services.consent.main:create_app"),
    "melding": ServiceEntry("melding", "services.melding.config:MeldingSettings", "services.melding.main:create_app"),
    "routing": ServiceEntry("routing", "services.routing.config:RoutingSettings", "services.routing.main:create_app"),
}
