"""The one personal-data purge loop the services share: a batch per transaction until a batch comes back short."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType

import pytest

from shared.retention import purge_due


class Transaction:
    def __init__(self, log: list[list[str]], due: list[str]) -> None:
        self.log, self.due, self.committed = log, due, False
        self.removed: list[str] = []

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.committed:
            for item in self.removed:
                self.due.remove(item)
            self.log.append(self.removed)

    async def commit(self) -> None:
        self.committed = True


@pytest.mark.parametrize(("due", "batch", "transactions"), [(5, 2, 3), (4, 2, 3), (0, 2, 1), (1, 200, 1)])
async def test_every_due_item_is_removed_once_a_batch_per_transaction(due: int, batch: int, transactions: int) -> None:
    items, log = [f"m-{i}" for i in range(due)], list[list[str]]()

    async def lock_due(uow: Transaction, limit: int) -> list[str]:
        return uow.due[:limit]

    async def remove(uow: Transaction, item: str, at: datetime) -> None:
        uow.removed.append(item)

    purged = await purge_due(lambda: Transaction(log, items), lock_due, remove, batch=batch)
    assert purged == due and items == [] and len(log) == transactions
    assert sorted(i for batch_items in log for i in batch_items) == sorted(f"m-{i}" for i in range(due))
