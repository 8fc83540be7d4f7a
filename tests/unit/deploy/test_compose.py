"""Docker cannot run here, so the compose file is checked against the CLI and the settings instead."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from services.cli import app as cli
from services.cli import plug_in
from services.registry import SERVICES, WEB
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def environment_names(settings_class: type[ServiceSettings]) -> set[str]:
    """The environment variables a settings class reads: its aliases, or the prefixed field names."""
    names: set[str] = set()
    for name, info in settings_class.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else [])
        names.update(c for c in choices if isinstance(c, str)) if choices else names.add(f"KANSRIJK_{name.upper()}")
    return names


SETTINGS_CLASSES = [e.settings_class for e in SERVICES.values()] + [e.settings_class for e in WEB.values()]
SETTING_NAMES = set().union(*(environment_names(settings_class()) for settings_class in SETTINGS_CLASSES))


def test_compose_names_every_service_and_web_application_of_the_registry() -> None:
    missing = (set(SERVICES) | set(WEB)) - set(COMPOSE["services"])
    assert not missing, f"not in docker-compose.yml: {sorted(missing)}"


def test_every_service_runs_in_compose_with_its_own_port_and_postgresql() -> None:
    for name, entry in SERVICES.items():
        service = COMPOSE["services"][name]
        settings = entry.settings()
        assert service["command"] == ["serve", name, "--host", "0.0.0.0", "--port", str(settings.port)]
        assert f"{settings.port}:{settings.port}" in service["ports"]
        environment = service["environment"]
        assert environment[f"KANSRIJK_{name.upper()}_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert environment[f"KANSRIJK_{name.upper()}_DATABASE_URL"].endswith(f"/{name}")
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert "/health/ready" in " ".join(service["healthcheck"]["test"])


def test_every_environment_variable_in_compose_is_a_setting() -> None:
    known = SETTING_NAMES
    for name, service in COMPOSE["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("KANSRIJK_"):
                assert variable in known, f"{name}: {variable} is read by nothing"


def test_the_compose_command_is_accepted_by_the_cli() -> None:
    runner = CliRunner()
    for name in SERVICES:
        command = COMPOSE["services"][name]["command"]
        result = runner.invoke(cli, [*command[:2], "--help"])
        assert result.exit_code == 0, result.output
        for option in command[2::2]:
            assert option in result.output, f"`kansrijk serve` has no {option}"


def test_one_database_per_service_is_created() -> None:
    init = (ROOT / "deploy" / "postgres-init.sql").read_text()
    for name in SERVICES:
        assert f"CREATE DATABASE {name};" in init


def test_the_image_runs_the_kansrijk_cli() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["kansrijk"]' in dockerfile
    assert "uv sync --frozen" in dockerfile
    assert COMPOSE["services"]["consent"]["build"]["dockerfile"] == "deploy/Dockerfile"


def _published(service: dict[str, object]) -> set[int]:
    return {int(str(p).split(":")[0]) for p in service.get("ports", [])}  # type: ignore[attr-defined]


def test_the_portal_runs_in_compose_on_its_own_port_beside_the_services_it_reads() -> None:
    portal = COMPOSE["services"]["portal"]
    port = WEB["portal"].settings().port
    assert portal["command"] == ["serve", "portal", "--host", "0.0.0.0", "--port", str(port)]
    # It shares the login provider's network stack: its port is published there.
    owner = COMPOSE["services"][portal["network_mode"].removeprefix("service:")]
    assert port in _published(owner)
    assert urlsplit(portal["environment"]["KANSRIJK_PORTAL_PUBLIC_URL"]).port == port
    for name in ("consent", "melding", "routing"):
        assert portal["depends_on"][name]["condition"] == "service_healthy"
        url = urlsplit(portal["environment"][f"KANSRIJK_PORTAL_{name.upper()}_URL"])
        assert (url.hostname, url.port) == (name, SERVICES[name].settings().port)
    assert "/health/" in " ".join(portal["healthcheck"]["test"])
    assert "kansrijk-data:/data" in portal["volumes"]  # the development signing key the services trust


def test_the_portal_and_the_browser_reach_the_development_provider_at_one_issuer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The mock provider names itself after the Host it is called on: the portal (server side) and her
    browser must call it at the same address, which must be the issuer the portal is given."""
    portal = COMPOSE["services"]["portal"]
    provider_name = portal["network_mode"].removeprefix("service:")
    provider = COMPOSE["services"][provider_name]
    assert portal["depends_on"][provider_name]["condition"] == "service_started"
    issuer = urlsplit(portal["environment"]["KANSRIJK_PORTAL_OIDC_ISSUER"])
    # Loopback in the shared network stack is the provider for the portal; the same port is published to her.
    assert issuer.scheme == "http" and issuer.hostname == "127.0.0.1" and issuer.port in _published(provider)
    assert provider["command"] == ["login-provider", "--host", "0.0.0.0", "--port", str(issuer.port)]
    plug_in()  # login-provider is a development tool (tools/pyproject.toml), added to `kansrijk` as its main() does
    result = CliRunner().invoke(cli, ["login-provider", "--help"])
    assert result.exit_code == 0 and "--host" in result.output and "--port" in result.output
    for variable, value in portal["environment"].items():
        monkeypatch.setenv(variable, value)
    settings = WEB["portal"].settings()  # as the portal reads them in its container
    assert settings.oidc_issuer == portal["environment"]["KANSRIJK_PORTAL_OIDC_ISSUER"] and settings.is_development
    assert settings.public_url == portal["environment"]["KANSRIJK_PORTAL_PUBLIC_URL"]


def _stages(dockerfile: str) -> dict[str, str]:
    """Each stage's name (the last is the default) and its text."""
    stages: dict[str, str] = {}
    name = ""
    for line in dockerfile.splitlines():
        if line.startswith("FROM "):
            name = line.split(" AS ")[-1].strip() if " AS " in line else f"stage-{len(stages)}"
            stages[name] = ""
        elif name:
            stages[name] += line + "\n"
    return stages


def test_only_the_development_stage_holds_the_dev_provider_and_production_is_the_default() -> None:
    stages = _stages((ROOT / "deploy" / "Dockerfile").read_text())
    production = list(stages)[-1]  # `docker build` without --target, and every service of compose
    assert "--from=build " in stages[production] and "uv sync --frozen --no-dev" in stages["build"]
    assert all("target" not in s.get("build", {}) for n, s in COMPOSE["services"].items() if n != "login-provider")
    target = COMPOSE["services"]["login-provider"]["build"]["target"]
    copied_from = stages[target].split("--from=")[1].split()[0]
    assert "uv sync --frozen\n" in stages[copied_from]  # with the dev group: oidc-provider-mock
    assert COMPOSE["services"]["login-provider"]["image"] != COMPOSE["services"]["portal"]["image"]
