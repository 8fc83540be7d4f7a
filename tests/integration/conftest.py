"""Repository tests that roll back: per service a database of its own, migrated once (when a test first asks
for it) and never committed to; each test's writes are rolled back when it ends (tests.support.rolled_back)
instead of the tables being emptied before it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared import migrations
from shared.db import Database
from tests.support import RunEnvironment, create_database, drop_database, rolled_back


class UntouchedDatabases:
    """Per service a migrated database that no test commits to."""

    def __init__(self, environment: RunEnvironment) -> None:
        self.environment = environment
        self.urls: dict[str, str] = {}

    async def url(self, service: str) -> str:
        if service not in self.urls:
            url = await create_database(self.environment, service, suffix="_rolled_back")
            await asyncio.to_thread(migrations.upgrade, service, url)
            self.urls[service] = url
        return self.urls[service]

    async def drop(self) -> None:
        for url in self.urls.values():
            await drop_database(self.environment, url)


@pytest.fixture(scope="session")
async def untouched_databases(environment: RunEnvironment) -> AsyncIterator[UntouchedDatabases]:
    databases = UntouchedDatabases(environment)
    yield databases
    await databases.drop()


async def _rolled_back(environment: RunEnvironment, url: str) -> AsyncIterator[Database]:
    database = environment.database(url)
    try:
        async with rolled_back(database):
            yield database
    finally:
        await database.dispose()


@pytest.fixture
async def rolled_back_routing(
    environment: RunEnvironment, untouched_databases: UntouchedDatabases
) -> AsyncIterator[Database]:
    """Routing's database for one test: what the test commits is rolled back when it ends."""
    async for database in _rolled_back(environment, await untouched_databases.url("routing")):
        yield database


@pytest.fixture
async def rolled_back_melding(
    environment: RunEnvironment, untouched_databases: UntouchedDatabases
) -> AsyncIterator[Database]:
    """The melding service's database for one test: what the test commits is rolled back when it ends."""
    async for database in _rolled_back(environment, await untouched_databases.url("melding")):
        yield database
