"""Routing's repository tests run on a database of their own, migrated once and never committed to: each test
rolls back what it wrote (tests.support.rolled_back) instead of emptying the tables first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared import migrations
from shared.db import Database
from tests.support import RunEnvironment, create_database, drop_database, rolled_back


@pytest.fixture(scope="session")
async def untouched_routing_url(environment: RunEnvironment) -> AsyncIterator[str]:
    url = await create_database(environment, "routing", suffix="_rolled_back")
    await asyncio.to_thread(migrations.upgrade, "routing", url)
    yield url
    await drop_database(environment, url)


@pytest.fixture
async def rolled_back_routing(environment: RunEnvironment, untouched_routing_url: str) -> AsyncIterator[Database]:
    """Routing's database for one test: what the test commits is rolled back when it ends."""
    database = environment.database(untouched_routing_url)
    try:
        async with rolled_back(database):
            yield database
    finally:
        await database.dispose()
