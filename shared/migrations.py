"""Alembic, one environment per service (`services/<name>/migrations/`), driven from code and the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from shared.crypto import FieldCipher
from shared.db import Database

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def alembic_config(service: str, database_url: str, cipher: FieldCipher | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["cipher"] = cipher  # the key ring, for steps that encrypt existing rows
    return config


def upgrade(service: str, database_url: str, revision: str = "head", *, cipher: FieldCipher | None = None) -> None:
    command.upgrade(alembic_config(service, database_url, cipher), revision)


def downgrade(service: str, database_url: str, revision: str = "base", *, cipher: FieldCipher | None = None) -> None:
    command.downgrade(alembic_config(service, database_url, cipher), revision)


def run_environment(target_metadata: MetaData) -> None:
    """The body of every service's `env.py`."""
    url = context.config.attributes["database_url"]
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        # render_as_batch: SQLite cannot ALTER most things; batch mode recreates the table instead.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        database = Database(url, cipher=context.config.attributes.get("cipher"))
        try:
            async with database.engine.connect() as connection:
                await connection.run_sync(run)
                await connection.commit()
        finally:
            await database.dispose()

    asyncio.run(run_async())
