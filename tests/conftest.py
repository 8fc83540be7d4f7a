"""Fixtures shared by every test: the run's environment (vhost, databases), apps, clients and tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.consent.config import ConsentSettings
from services.consent.main import create_app as create_consent_app
from shared import migrations
from shared.db import Database
from tests.support import RunEnvironment, Tokens, create_environment, destroy_environment, empty_tables, running

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


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
    return Tokens(environment.dev_key)


def consent_settings(environment: RunEnvironment, **overrides: object) -> ConsentSettings:
    values: dict[str, object] = {
        "data_dir": environment.data_dir, "amqp_url": environment.amqp_url,
        "database_url": environment.database_urls["consent"], "publish_timeout_seconds": 3.0,
        "outbox_poll_seconds": 0.2,
    }
    values.update(overrides)
    return ConsentSettings(**values)


@pytest.fixture
async def consent_db(environment: RunEnvironment) -> AsyncIterator[Database]:
    database = Database(environment.database_urls["consent"])
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
