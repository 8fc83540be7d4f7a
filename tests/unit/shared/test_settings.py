"""Every service reads the environment of the contract ("Running it")."""

from pathlib import Path

import pytest

from services.registry import SERVICES

PORTS = {"consent": 8001, "melding": 8002, "routing": 8003, "fhir": 8004}


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_reads_the_kansrijk_environment(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KANSRIJK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KANSRIJK_AMQP_URL", "amqp://guest:guest@mq.example:5672/kansrijk-vhost")
    monkeypatch.setenv(f"KANSRIJK_{name.upper()}_PORT", "9100")
    settings = SERVICES[name].settings()
    assert settings.data_dir == tmp_path
    assert settings.amqp_url.endswith("/kansrijk-vhost")
    assert settings.port == 9100
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}"
    monkeypatch.setenv(f"KANSRIJK_{name.upper()}_DATABASE_URL", "postgresql+asyncpg://db/k")
    assert SERVICES[name].settings().database_url == "postgresql+asyncpg://db/k"


@pytest.mark.parametrize("name", list(SERVICES))
def test_default_ports(name: str) -> None:
    assert SERVICES[name].settings().port == PORTS[name]


@pytest.mark.parametrize("name", ["melding", "routing", "fhir"])
def test_the_consent_service_is_found_by_its_port(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANSRIJK_CONSENT_PORT", "9001")
    assert SERVICES[name].settings().consent_url == "http://127.0.0.1:9001"
    monkeypatch.setenv("KANSRIJK_CONSENT_URL", "http://consent:8001")
    assert SERVICES[name].settings().consent_url == "http://consent:8001"


def test_the_fhir_facade_finds_the_melding_service_by_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANSRIJK_MELDING_PORT", "9002")
    assert SERVICES["fhir"].settings().melding_url == "http://127.0.0.1:9002"
    monkeypatch.setenv("KANSRIJK_MELDING_URL", "http://melding:8002")
    assert SERVICES["fhir"].settings().melding_url == "http://melding:8002"


def test_the_database_pool_is_sized_by_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from shared.app import build_runtime

    monkeypatch.setenv("KANSRIJK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KANSRIJK_MELDING_DATABASE_URL", "postgresql+asyncpg://db.example/k")  # never connected
    monkeypatch.setenv("KANSRIJK_DATABASE_POOL_SIZE", "4")
    monkeypatch.setenv("KANSRIJK_DATABASE_MAX_OVERFLOW", "2")
    from services.melding.service_layer.unit_of_work import unit_of_work_factory

    pool = build_runtime(SERVICES["melding"].settings(), unit_of_work_factory).database.engine.pool
    assert (pool.size(), pool._max_overflow) == (4, 2)  # type: ignore[attr-defined]


def test_the_fault_suites_kill_after_commit_is_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pydantic import ValidationError

    from shared.app import build_runtime, outbox_relay
    from shared.messaging.outbox import outbox_table

    monkeypatch.setenv("KANSRIJK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KANSRIJK_FAULT_KILL_AFTER_COMMIT", "true")
    armed = SERVICES["consent"].settings()
    assert armed.fault_kill_after_commit and armed.is_development
    from services.consent.service_layer.unit_of_work import unit_of_work_factory
    from shared.db import new_metadata

    runtime = build_runtime(armed, unit_of_work_factory)
    assert outbox_relay(runtime, outbox_table(new_metadata())).kill_after_commit
    monkeypatch.setenv("KANSRIJK_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="KANSRIJK_FAULT_KILL_AFTER_COMMIT"):
        SERVICES["consent"].settings()
    monkeypatch.delenv("KANSRIJK_FAULT_KILL_AFTER_COMMIT")
    with pytest.raises(ValidationError, match="in production"):  # what production asks for otherwise
        SERVICES["consent"].settings()
