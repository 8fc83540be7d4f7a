"""One sender's endpoints cannot hold up another sender's notifications: the notifier on the run's real
database, against endpoints of the test's own on loopback that misbehave — one that never answers, one that
trickles its answer's head a byte at a time, one whose answer never ends, a stored header that cannot be
sent — while another organisation's well-behaved endpoint waits for its notification. Each test asserts
that the other organisation's notification arrives while the misbehaving ones are still at it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from services.fhir.config import FhirSettings
from services.fhir.domain.subscription import Event, SubscriptionRequest
from services.fhir.service_layer.notifier import Notifier
from services.fhir.service_layer.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from tests.conftest import service_settings
from tests.support import RunEnvironment, _free_port, empty_tables

SENDER, OTHER = "10000001", "20000002"
MANY = 10  # the misbehaving organisation's Subscriptions


@pytest.fixture
async def unit_of_work(environment: RunEnvironment) -> AsyncIterator[UnitOfWorkFactory]:
    database = environment.database(environment.database_urls["fhir"])
    await empty_tables(database)
    yield unit_of_work_factory(database)
    await database.dispose()


def settings(environment: RunEnvironment, **overrides: object) -> FhirSettings:
    values: dict[str, object] = {
        "notification_poll_seconds": 0.1,
        # an attempt's deadline far beyond what the tests wait: whatever arrives, arrives while the
        # misbehaving endpoints are still being waited for
        "notification_timeout_seconds": 600.0,
        "notification_lease_seconds": 900.0,
        **overrides,
    }
    made: FhirSettings = service_settings(environment, "fhir", environment.database_urls["fhir"], **values)
    return made


async def subscribe(unit_of_work: UnitOfWorkFactory, org_id: str, endpoint: str, headers: list[str]) -> str:
    """A Subscription as stored (whatever its headers), with one notification waiting."""
    subscription_id = str(uuid.uuid4())
    at = datetime.now(UTC) - timedelta(minutes=1)
    async with unit_of_work() as uow:
        await uow.subscriptions.add(
            subscription_id=subscription_id,
            org_id=org_id,
            request=SubscriptionRequest(endpoint, headers, None, "r"),
            created_by="u",
            at=at,
        )
        number = await uow.subscriptions.next_event_number(subscription_id)
        await uow.subscriptions.add_notification(subscription_id, Event(number, str(uuid.uuid4()), at))
        await uow.commit()
    return subscription_id


class Taker:
    """A well-behaved endpoint: takes every notification (200) and keeps what arrived."""

    def __init__(self) -> None:
        self.arrived: list[str] = []
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/notify"

    async def _take(self, request: web.Request) -> web.Response:
        bundle = await request.json()
        self.arrived.append(bundle["entry"][0]["resource"]["parameter"][0]["valueReference"]["reference"])
        return web.Response(status=200)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Taker]:
        app = web.Application()
        app.router.add_post("/notify", self._take)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        try:
            yield self
        finally:
            await runner.cleanup()


class Misbehaving:
    """A raw TCP endpoint that reads a request's head and then does `answer` with the connection; counts the
    requests it is in the middle of, and the most at once."""

    def __init__(self, answer: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.answer = answer
        self.busy = self.most = self.requests = 0
        self.handlers: set[asyncio.Task[object]] = set()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/notify"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        this = asyncio.current_task()
        assert this is not None
        self.handlers.add(this)
        this.add_done_callback(self.handlers.discard)
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            self.busy += 1
            self.most = max(self.most, self.busy)
            try:
                await self.answer(writer)
            finally:
                self.busy -= 1
        writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Misbehaving]:
        server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        try:
            yield self
        finally:
            server.close()
            for handler in list(self.handlers):
                handler.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)


async def never_answers(writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


async def trickles_its_head(writer: asyncio.StreamWriter) -> None:
    """A status line, then a header a byte every 0.2 s, never finishing it."""
    writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while True:
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(0.2)


async def answers_without_end(writer: asyncio.StreamWriter) -> None:
    """200 and then a body that never ends, as fast as the connection takes it."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    while True:
        writer.write(chunk)
        await writer.drain()


@contextlib.asynccontextmanager
async def notifier_running(
    unit_of_work: UnitOfWorkFactory, environment: RunEnvironment, **overrides: object
) -> AsyncIterator[Notifier]:
    notifier = Notifier(unit_of_work, settings(environment, **overrides))
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        yield notifier
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def arrives(taker: Taker, subscription_id: str, *, timeout: float = 20) -> None:
    """Fails when the notification has not arrived within `timeout` (a bound, not a measurement)."""
    async with asyncio.timeout(timeout):
        while not any(reference.endswith(subscription_id) for reference in taker.arrived):
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("answer", [never_answers, trickles_its_head])
async def test_another_organisations_notification_arrives_while_one_organisations_endpoints_hang(
    unit_of_work: UnitOfWorkFactory,
    environment: RunEnvironment,
    answer: Callable[[asyncio.StreamWriter], Awaitable[None]],
) -> None:
    async with Misbehaving(answer).serving() as bad, Taker().serving() as good:
        for _ in range(MANY):  # older: they are due first
            await subscribe(unit_of_work, SENDER, bad.url, [])
        theirs = await subscribe(unit_of_work, OTHER, good.url, [])
        async with notifier_running(unit_of_work, environment):
            await arrives(good, theirs)
            async with asyncio.timeout(20):
                while bad.busy < 2:
                    await asyncio.sleep(0.05)
            # arrived while the misbehaving endpoint's attempts were (and are) still hanging: none has ended
            assert bad.requests == 2
            # one organisation's Subscriptions have at most `per organisation` attempts in flight at once,
            # however many rounds pass meanwhile
            for _ in range(10):
                await asyncio.sleep(0.1)
                assert bad.busy == 2 and bad.requests == 2


async def test_an_answer_without_end_is_not_read_and_holds_up_nobody(
    unit_of_work: UnitOfWorkFactory, environment: RunEnvironment
) -> None:
    async with Misbehaving(answers_without_end).serving() as bad, Taker().serving() as good:
        huge = [await subscribe(unit_of_work, SENDER, bad.url, []) for _ in range(MANY)]
        theirs = await subscribe(unit_of_work, OTHER, good.url, [])
        async with notifier_running(unit_of_work, environment) as notifier:
            await arrives(good, theirs)
            async with asyncio.timeout(20):  # the 200 counts; the body is dropped unread with the connection
                while bad.requests < MANY or bad.busy:
                    await asyncio.sleep(0.05)
                await notifier.idle()
        async with unit_of_work() as uow:
            waiting = [await uow.subscriptions.claim(s, datetime.now(UTC), timedelta(0), 1) for s in huge]
        assert waiting == [([], 0)] * MANY  # every one of them taken (2xx)


async def test_a_stored_header_that_cannot_be_sent_fails_only_its_own_subscription(
    unit_of_work: UnitOfWorkFactory, environment: RunEnvironment
) -> None:
    async with Taker().serving() as good:
        ours = await subscribe(unit_of_work, SENDER, good.url, ["Authorization: Bearer y"])
        broken = [await subscribe(unit_of_work, SENDER, good.url, ["X-A: café"]) for _ in range(40)]
        theirs = await subscribe(unit_of_work, OTHER, good.url, ["Authorization: Bearer x"])
        async with notifier_running(unit_of_work, environment, notification_poll_seconds=1.0) as notifier:
            await arrives(good, theirs)
            await arrives(good, ours)  # the same organisation's sendable Subscription too
            await notifier.idle()
        assert not [s for s in broken if any(r.endswith(s) for r in good.arrived)]
        async with unit_of_work() as uow:
            failed = await uow.subscriptions.claim(broken[0], datetime.now(UTC) + timedelta(hours=1), timedelta(0), 1)
        assert failed[1] >= 1  # its attempt failed (and waits for its retry), nothing else did


async def test_with_an_hour_between_looks_a_new_notification_goes_out_when_the_consumer_wakes_the_notifier(
    unit_of_work: UnitOfWorkFactory, environment: RunEnvironment
) -> None:
    """The notifier does not poll for new work: the consumer's commit wakes it (`after_commit`, services/fhir/
    worker.py), and an attempt that ends wakes it for what waited for its place."""
    async with Taker().serving() as good:
        async with notifier_running(unit_of_work, environment, notification_poll_seconds=3600.0) as notifier:
            await asyncio.sleep(0.3)  # its first round has looked and found nothing: now it waits an hour
            first = await subscribe(unit_of_work, OTHER, good.url, [])
            await asyncio.sleep(0.5)
            assert not good.arrived, "nothing woke it: it waits for its next look"
            notifier.wake()
            await arrives(good, first)
            # Two of one organisation at once at most: the third starts when one of the first two has ended.
            more = [await subscribe(unit_of_work, SENDER, good.url, []) for _ in range(3)]
            notifier.wake()
            for subscription_id in more:
                await arrives(good, subscription_id)
