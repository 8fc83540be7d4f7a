"""Fixtures shared by every test: the run's environment (vhost, databases), apps, clients and tokens."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.consent.config import ConsentSettings
from services.consent.main import create_app as create_consent_app
from shared import migrations
from shared.db import Database
from tests.support import (
    BACKEND,
    RunEnvironment,
    Tokens,
    create_environment,
    destroy_environment,
    empty_tables,
    running,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kansrijk fault suite")
    group.addoption(
        "--fault-meldingen",
        type=int,
        default=int(os.environ.get("KANSRIJK_FAULT_MELDINGEN", "1000")),
        help="meldingen per fault scenario (default 1000; e.g. 10000 for the long run)",
    )
    group.addoption(
        "--fault-rate",
        type=float,
        default=float(os.environ.get("KANSRIJK_FAULT_RATE", "40")),
        help="meldingen per second the simulated EHRs send together (default 40)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs PostgreSQL (KANSRIJK_TEST_DATABASE=postgresql, as in CI)")
    for item in items:
        if BACKEND != "postgresql" and "postgres_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
async def environment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunEnvironment]:
    environment = await create_environment(tmp_path_factory.mktemp("kansrijk"))
    try:
        for service, url in environment.database_urls.items():
            await asyncio.to_thread(migrations.upgrade, service, url)
        yield environment
    finally:
        await destroy_environment(environment)


@pytest.fixture(scope="session")
def tokens(environment: RunEnvironment) -> Tokens:
    return Tokens(environment.data_dir)


def consent_settings(environment: RunEnvironment, **overrides: object) -> ConsentSettings:
    values: dict[str, Any] = {
        "data_dir": environment.data_dir,
        "amqp_url": environment.amqp_url,
        "database_url": environment.database_urls["consent"],
        "publish_timeout_seconds": 3.0,
        "outbox_sweep_seconds": 0.2,
    }
    values.update(overrides)
    return ConsentSettings(**values)


@pytest.fixture
async def consent_db(environment: RunEnvironment) -> AsyncIterator[Database]:
    database = environment.database(environment.database_urls["consent"])
    await empty_tables(database)
    yield database
    await database.dispose()


@pytest.fixture
async def consent_client(environment: RunEnvironment, consent_db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The consent API in process, with its relay running against this run's vhost."""
    app = create_consent_app(consent_settings(environment))
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://consent") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


# --- the whole system, over real HTTP and real RabbitMQ ---------------------------------------------------


def service_settings(environment: RunEnvironment, name: str, database_url: str, **overrides: object) -> Any:
    from services.registry import SERVICES

    values: dict[str, Any] = {
        "data_dir": environment.data_dir,
        "amqp_url": environment.amqp_url,
        "database_url": database_url,
        "publish_timeout_seconds": 3.0,
        "outbox_sweep_seconds": 0.2,
    }
    values.update(overrides)
    return SERVICES[name].settings(**values)


@pytest.fixture(scope="session")
async def stack_databases(environment: RunEnvironment) -> AsyncIterator[dict[str, str]]:
    """The running system's own databases: no other test's relay works on them."""
    from tests.support import SERVICES, create_database, drop_database

    urls = {name: await create_database(environment, name, suffix="_stack") for name in SERVICES}
    yield urls
    for url in urls.values():
        await drop_database(environment, url)


PUBLIC_FHIR_URL = "https://api.kansrijk.example.nl/fhir"


@pytest.fixture(scope="session")
async def stack(environment: RunEnvironment, stack_databases: dict[str, str]) -> AsyncIterator[dict[str, str]]:
    """consent, melding, routing and the FHIR facade as real servers on loopback ports, with their relays and
    consumers."""
    from tests.support import SERVICES, _free_port
    from tools.stack import run_stack

    ports = {name: _free_port() for name in SERVICES}
    consent_url = f"http://127.0.0.1:{ports['consent']}"
    urls = stack_databases

    def peers(me: str) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in ports.items() if name != me}

    settings = {
        "consent": service_settings(
            environment, "consent", urls["consent"], port=ports["consent"], audit_peers=peers("consent")
        ),
        "melding": service_settings(
            environment,
            "melding",
            urls["melding"],
            port=ports["melding"],
            consent_url=consent_url,
            audit_peers=peers("melding"),
        ),
        "routing": service_settings(
            environment,
            "routing",
            urls["routing"],
            port=ports["routing"],
            consent_url=consent_url,
            reroute_interval_seconds=1.0,
            overdue_interval_seconds=0.5,
            audit_peers=peers("routing"),
        ),
        "fhir": service_settings(
            environment,
            "fhir",
            urls["fhir"],
            port=ports["fhir"],
            consent_url=consent_url,
            melding_url=f"http://127.0.0.1:{ports['melding']}",
            public_url=PUBLIC_FHIR_URL,  # as behind an ingress: not the address the tests reach it on
            subscription_min_heartbeat_seconds=1,  # 60 s by default: the tests wait for a heartbeat
            audit_peers=peers("fhir"),
        ),
    }
    async with run_stack(settings) as base_urls:
        yield base_urls


@pytest.fixture
async def system(
    stack: dict[str, str], stack_databases: dict[str, str], environment: RunEnvironment
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """HTTP clients for each running service, with every service's tables emptied first."""
    for url in stack_databases.values():
        database = environment.database(url)
        await empty_tables(database)
        await database.dispose()
    # An idle connection is let go well before the services close theirs (`http_keep_alive_seconds`, 5 s), as the
    # services' own consent client does: reusing one the server is closing fails the request (httpx.ReadError).
    limits = httpx.Limits(keepalive_expiry=2.0)
    clients = {name: httpx.AsyncClient(base_url=url, timeout=15, limits=limits) for name, url in stack.items()}
    yield clients
    for client in clients.values():
        await client.aclose()
