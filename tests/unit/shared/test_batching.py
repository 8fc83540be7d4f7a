"""`shared.batching.Batcher`: what arrives together is handled together; a batch that fails is tried again item
by item, so only the item that fails alone fails; items that must not share a batch wait for the next."""

from __future__ import annotations

import asyncio

import pytest

from shared.batching import Batcher


class Doubler:
    """Doubles numbers in batches; a batch holding a 13 fails as a whole, and 13 alone fails too."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)  # a transaction: what arrives meanwhile waits for the next batch
        if 13 in items:
            raise RuntimeError("a poisoned batch")
        return [ValueError(item) if item < 0 else 2 * item for item in items]


async def test_what_arrives_together_is_handled_together_and_each_gets_its_own_outcome() -> None:
    doubler = Doubler()
    batcher: Batcher[int, int] = Batcher(doubler, max_size=8)
    numbers = range(100, 120)
    results = await asyncio.gather(*(batcher.submit(n) for n in numbers))
    assert results == [2 * n for n in numbers]
    # All twenty were queued before the first batch began: batches of at most 8, in the order they came.
    assert doubler.batches == [list(numbers[:8]), list(numbers[8:16]), list(numbers[16:])]


async def test_an_item_answered_with_an_exception_raises_it_for_its_caller_alone() -> None:
    batcher: Batcher[int, int] = Batcher(Doubler())
    results = await asyncio.gather(*(batcher.submit(n) for n in (1, -2, 3)), return_exceptions=True)
    assert results[0] == 2 and results[2] == 6
    assert isinstance(results[1], ValueError)


async def test_a_failed_batch_is_tried_again_one_by_one_and_only_the_poison_fails() -> None:
    doubler = Doubler()
    batcher: Batcher[int, int] = Batcher(doubler)
    results = await asyncio.gather(*(batcher.submit(n) for n in (0, 12, 13, 14)), return_exceptions=True)
    assert results[0] == 0 and results[1] == 24 and results[3] == 28
    assert isinstance(results[2], RuntimeError)
    # Together, which failed; then each alone.
    assert doubler.batches == [[0, 12, 13, 14], [0], [12], [13], [14]]


async def test_items_with_one_key_never_share_a_batch_and_keep_their_order() -> None:
    doubler = Doubler()
    batcher: Batcher[int, int] = Batcher(doubler, keys=lambda n: [n % 3])
    results = await asyncio.gather(*(batcher.submit(n) for n in range(7)))
    assert results == [2 * n for n in range(7)]
    for batch in doubler.batches:
        assert len({n % 3 for n in batch}) == len(batch), doubler.batches
    assert doubler.batches == [[0, 1, 2], [3, 4, 5], [6]]


async def test_at_most_concurrency_batches_run_at_once() -> None:
    running, most = 0, 0

    async def handle(items: list[int]) -> list[int | BaseException]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return list(items)

    batcher: Batcher[int, int] = Batcher(handle, max_size=2, concurrency=2)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(20))) == list(range(20))
    assert most == 2


async def test_a_caller_that_gives_up_leaves_its_batch_to_finish_for_the_others() -> None:
    doubler = Doubler()
    batcher: Batcher[int, int] = Batcher(doubler)
    first = asyncio.ensure_future(batcher.submit(1))
    second = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == 4
    with pytest.raises(asyncio.CancelledError):
        await first


def test_a_batcher_needs_room_for_one() -> None:
    with pytest.raises(ValueError):
        Batcher(Doubler(), max_size=0)
