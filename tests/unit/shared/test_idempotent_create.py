"""The one idempotent create consent and melding share: a key seen before answers with its first resource."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.exc import IntegrityError

from shared.errors import IdempotencyConflict
from shared.idempotency import IdempotentRequest, StoredResponse, create_once, replay_of
from tests.unit.fakes import FakeUnitOfWorkBase

REQUEST = IdempotentRequest("12345678", "key-1", "fingerprint-1", status_code=201)


class Store:
    def __init__(self) -> None:
        self.uow, self.created = FakeUnitOfWorkBase(), list[str]()
        self.ids = (f"r-{n}" for n in itertools.count(1))

    async def create(self, uow: FakeUnitOfWorkBase, resource_id: str) -> str:
        self.created.append(resource_id)
        await uow.commit()  # as a real create does: without it, neither the resource nor its key is kept
        return resource_id

    async def replay(self, uow: FakeUnitOfWorkBase, resource_id: str) -> str:
        return f"replayed {resource_id}"

    async def send(
        self,
        request: IdempotentRequest | None,
        create: Callable[[FakeUnitOfWorkBase, str], Awaitable[str]] | None = None,
    ) -> str:
        return await create_once(
            lambda: self.uow,
            request,
            new_id=lambda: next(self.ids),
            create=create or self.create,
            replay=self.replay,
        )


async def test_a_retry_with_the_same_key_answers_with_the_first_resource_and_creates_nothing() -> None:
    store = Store()
    assert await store.send(REQUEST) == "r-1"
    assert await store.send(REQUEST) == "replayed r-1"
    assert await replay_of(lambda: store.uow, REQUEST, store.replay) == "replayed r-1"
    kept = store.uow.idempotency.keys[("12345678", "key-1")]
    assert store.created == ["r-1"] and kept == ("fingerprint-1", StoredResponse(201, "r-1"))
    created = await store.send(None)
    assert store.created == ["r-1", created]


async def test_the_same_key_with_another_request_is_a_conflict() -> None:
    store = Store()
    await store.send(REQUEST)
    with pytest.raises(IdempotencyConflict):
        await store.send(IdempotentRequest("12345678", "key-1", "fingerprint-2", status_code=201))
    assert await replay_of(lambda: Store().uow, REQUEST, store.replay) is None


async def test_when_a_concurrent_request_with_the_key_committed_first_this_one_answers_as_it_did() -> None:
    store = Store()

    async def lost_the_race(uow: FakeUnitOfWorkBase, resource_id: str) -> str:
        uow.idempotency.keys[("12345678", "key-1")] = ("fingerprint-1", StoredResponse(201, "winner"))
        raise IntegrityError("insert", {}, Exception("duplicate key"))

    assert await store.send(REQUEST, lost_the_race) == "replayed winner"
    with pytest.raises(IntegrityError):
        await store.send(None, lost_the_race)
