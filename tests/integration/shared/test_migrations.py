"""Every service's migrations run up from empty and down again, and match the tables the code declares."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect

from shared import migrations
from shared.db import Database
from tests.support import SERVICES, RunEnvironment, create_database, drop_database


def service_metadata(service: str) -> MetaData:
    from services.consent.adapters.orm import metadata as consent
    from services.melding.adapters.orm import metadata as melding
    from services.routing.adapters.orm import metadata as routing

    return {"consent": consent, "melding": melding, "routing": routing}[service]


def backends(environment_backend: str) -> list[str]:
    # SQLite always; PostgreSQL whenever the run has it (CI does).
    return ["sqlite", "postgresql"] if environment_backend == "postgresql" else ["sqlite"]


async def table_names(url: str) -> set[str]:
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await database.dispose()


async def schema_differences(url: str, service: str) -> list:
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), service_metadata(service))
            )
    finally:
        await database.dispose()


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_run_up_from_empty_and_down_again(environment: RunEnvironment, service: str) -> None:
    for backend in backends(environment.backend):
        scratch = RunEnvironment(
            run_id=environment.run_id, backend=backend, data_dir=environment.data_dir, vhost=environment.vhost
        )
        url = await create_database(scratch, service, suffix="_migrations")
        try:
            await asyncio.to_thread(migrations.upgrade, service, url)
            tables = await table_names(url)
            assert set(service_metadata(service).tables) <= tables
            assert await schema_differences(url, service) == [], f"{backend}: migrations and models disagree"
            await asyncio.to_thread(migrations.downgrade, service, url)
            assert await table_names(url) <= {"alembic_version"}
            await asyncio.to_thread(migrations.upgrade, service, url)  # and up again after down
        finally:
            await drop_database(scratch, url)
