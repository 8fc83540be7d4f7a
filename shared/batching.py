"""Requests that arrive together are handled together: the `Batcher`.

Callers `submit` an item and wait for its own outcome; what has queued meanwhile is handed to `handle` at once,
up to `max_size` items, one batch after another (at most `concurrency` at a time). A batch of one is the same
code. `handle` answers each item (a result, or the exception that item's caller gets); if it raises instead,
the batch failed as a whole (a database error, a deadlock, a bug) and each of its items is tried again alone,
so that only the item that fails alone fails. That retry is the one other path.

Items that must not share a batch (two requests with one Idempotency-Key, two meldingen for one patient) say
so with `keys`: an item with a key already in the batch waits for the next one, in the order it came.

No task outlives its work: the batch loop is started by the first `submit` that finds it idle and ends when
nothing waits, so the batcher needs no start or stop and belongs to no event loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Each item's outcome, in the items' order: its result, or the exception its caller gets.
Handle = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    outcome: asyncio.Future[R] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Batcher(Generic[T, R]):
    def __init__(
        self,
        handle: Handle[T, R],
        *,
        max_size: int = 64,
        concurrency: int = 1,
        keys: Callable[[T], Sequence[Hashable]] = lambda item: (),
    ) -> None:
        if max_size < 1 or concurrency < 1:
            raise ValueError("max_size and concurrency must be at least 1")
        self._handle, self._max_size, self._concurrency, self._keys = handle, max_size, concurrency, keys
        self._queue: deque[_Waiting[T, R]] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # the last batches' sizes, for tests and diagnosis

    async def submit(self, item: T) -> R:
        """This item's outcome, handled in a batch with what queued beside it."""
        waiting: _Waiting[T, R] = _Waiting(item)
        self._queue.append(waiting)
        if len(self._running) < self._concurrency:
            task = asyncio.create_task(self._drain())
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        # Shielded: a caller that gives up (its client went away) does not cancel the batch its item is in.
        return await asyncio.shield(waiting.outcome)

    def _take(self) -> list[_Waiting[T, R]]:
        """The next batch: the queue's items in order, skipping (for the next batch) one whose key is taken."""
        batch: list[_Waiting[T, R]] = []
        taken: set[Hashable] = set()
        later: list[_Waiting[T, R]] = []
        while self._queue and len(batch) < self._max_size:
            waiting = self._queue.popleft()
            keys = set(self._keys(waiting.item))
            if keys & taken:
                later.append(waiting)
                continue
            taken |= keys
            batch.append(waiting)
        self._queue.extendleft(reversed(later))
        return batch

    async def _drain(self) -> None:
        while batch := self._take():
            self.batch_sizes.append(len(batch))
            try:
                outcomes = await self._outcomes(batch)
            except BaseException as stopped:  # cancelled (the process stops): its callers are told, not left waiting
                for waiting in batch:
                    if not waiting.outcome.done():
                        waiting.outcome.set_exception(stopped)
                raise
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if waiting.outcome.done():
                    continue
                if isinstance(outcome, BaseException):
                    waiting.outcome.set_exception(outcome)
                else:
                    waiting.outcome.set_result(outcome)

    async def _outcomes(self, batch: list[_Waiting[T, R]]) -> Sequence[R | BaseException]:
        if len(batch) == 1:
            return [await self._alone(batch[0].item)]
        try:
            outcomes = await self._handle([w.item for w in batch])
        except Exception as exc:  # noqa: BLE001 - the batch failed as a whole: which item fails is found one by one
            log.warning("batch_failed", size=len(batch), error=type(exc).__name__)  # the type: messages may hold data
            return [await self._alone(w.item) for w in batch]
        if len(outcomes) != len(batch):
            raise RuntimeError(f"a batch of {len(batch)} was answered {len(outcomes)} times")
        return outcomes

    async def _alone(self, item: T) -> R | BaseException:
        try:
            [outcome] = await self._handle([item])
        except Exception as exc:  # noqa: BLE001 - the item's own failure goes to its caller, raised there
            return exc
        return outcome
