"""Docker cannot run here, so the compose file is checked against the CLI and the settings instead."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from services.cli import app as cli
from services.registry import SERVICES
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def environment_names(settings_class: type[ServiceSettings]) -> set[str]:
    """The environment variables a settings class reads: its aliases, or the prefixed field names."""
    names = set()
    for name, info in settings_class.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else [])
        names.update(c for c in choices if isinstance(c, str)) if choices else names.add(f"KANSRIJK_{name.upper()}")
    return names


SETTING_NAMES = set().union(*(environment_names(type(e.settings())) for e in SERVICES.values()))


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
