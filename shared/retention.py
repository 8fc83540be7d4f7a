"""Housekeeping: rows that only served delivery or deduplication are removed once their window has passed.

Sent outbox rows and processed-message ids are kept well beyond any redelivery RabbitMQ can make (a
message is redelivered while unacked or dead-lettered and replayed: days at most), so deduplication is
not weakened; idempotency keys are kept longer than the contract's 24 hours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import Column, Table, delete, func, select

from shared.clock import now
from shared.db import Database
from shared.ports import Transaction

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Retention:
    table: Table
    column: Column[Any]  # the moment after which a row may go (NULL: never)
    keep: timedelta


Purge = Callable[..., Coroutine[Any, Any, dict[str, int]]]  # a service's purge(dry_run=…) of personal data

PURGE_BATCH = 200


U = TypeVar("U", bound=Transaction)  # what the purge loop needs of a unit of work: a transaction it can commit
T = TypeVar("T")


async def purge_due(
    unit_of_work: Callable[[], U],
    lock_due: Callable[[U, int], Awaitable[Sequence[T]]],
    remove: Callable[[U, T, datetime], Awaitable[None]],
    *,
    batch: int = PURGE_BATCH,
) -> int:
    """The personal-data purge loop every service runs: `lock_due` locks up to `batch` items whose data is due
    (so two workers never purge one twice), `remove` removes one (and audits it), one transaction per batch,
    until a batch comes back short. Returns how many were purged."""
    purged = 0
    while True:
        async with unit_of_work() as uow:
            due = await lock_due(uow, batch)
            at = now()
            for item in due:
                await remove(uow, item, at)
            await uow.commit()
        purged += len(due)
        if len(due) < batch:
            return purged


async def prune(database: Database, rules: list[Retention], *, dry_run: bool = False) -> dict[str, int]:
    """Delete what every rule lets go of (with `dry_run`, count it). Returns the rows per table."""
    removed: dict[str, int] = {}
    async with database.unit_of_work() as uow:
        for rule in rules:
            due = (rule.column.is_not(None), rule.column < now() - rule.keep)
            if dry_run:
                removed[rule.table.name] = (
                    await uow.session.execute(select(func.count()).select_from(rule.table).where(*due))
                ).scalar_one()
            else:
                result = await uow.session.execute(delete(rule.table).where(*due))
                removed[rule.table.name] = getattr(result, "rowcount", 0) or 0
        await uow.commit()
    return removed


def pruning_worker(
    database: Database, rules: list[Retention], *, every_seconds: float = 3600.0, purge: Purge | None = None
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                removed = await prune(database, rules)
                if purge is not None:
                    removed.update(await purge())
                if any(removed.values()):
                    log.info("pruned", **removed)
            except Exception as exc:  # noqa: BLE001 - the database is away: next round
                log.warning("prune_failed", error_type=type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_seconds)
            except TimeoutError:
                pass

    return run
