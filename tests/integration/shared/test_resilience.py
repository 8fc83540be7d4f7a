"""What the reliability guarantees rest on, each shown on its own: a silent broker is noticed, a database
outage is waited out (never dead-lettered, never a 500), and PostgreSQL keeps its commits durable."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from services.consent.config import ConsentSettings
from services.consent.main import create_app as create_consent_app
from shared.contracts.subscriptions import EventQueue
from shared.db import Database, UnitOfWork
from shared.messaging.broker import Broker
from shared.messaging.consumer import IdempotentConsumer, IncomingEvent
from shared.messaging.topology import DEAD_LETTER_QUEUE, EVENTS_EXCHANGE
from tests.support import BACKEND, RunEnvironment, TcpProxy, Tokens, _free_port, running, scratch_vhost


async def test_a_silent_broker_is_noticed_within_30_seconds_and_the_connection_comes_back(
    environment: RunEnvironment,
) -> None:
    proxy = TcpProxy()
    await proxy.open()
    broker = Broker(environment.amqp_url_via(proxy.port), client_name="kansrijk-test-heartbeat")
    try:
        await broker.connect(attempts=3)
        assert broker.is_connected
        proxy.blackhole()  # the link goes dead without a FIN or RST: only heartbeats can tell
        started = time.monotonic()
        while broker.is_connected and time.monotonic() - started < 45:
            await asyncio.sleep(0.25)
        noticed = time.monotonic() - started
        assert not broker.is_connected and noticed <= 30, f"a dead broker went unnoticed for {noticed:.0f}s"

        proxy.restore()
        proxy.reset()  # what is left of the dead connections goes; the robust connection dials again
        started = time.monotonic()
        while not broker.is_connected and time.monotonic() - started < 30:
            await asyncio.sleep(0.25)
        assert broker.is_connected, "the connection did not come back after the link was restored"
        # A dial made while the link was dead may still be reset and dialled again (the robust connection
        # waits 5 s): what counts is that a publish gets through within the 30 s.
        published = None
        while published is None and time.monotonic() - started < 30:
            try:
                channel = await broker.channel()
                published = await channel.default_exchange.publish(
                    aio_pika.Message(b"{}"), routing_key="no-such-queue", timeout=5
                )
            except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError):
                await asyncio.sleep(0.5)
        assert published is not None, "nothing could be published after the link was restored"
    finally:
        await broker.close()
        await proxy.close()


async def test_a_request_while_the_database_is_away_is_a_503_with_retry_after(
    environment: RunEnvironment,
    tokens: Tokens,
) -> None:
    nowhere = f"postgresql+asyncpg://postgres@127.0.0.1:{_free_port()}/kansrijk"
    app = create_consent_app(
        ConsentSettings(data_dir=environment.data_dir, amqp_url=environment.amqp_url, database_url=nowhere),
        run_workers=False,
    )
    async with (
        running(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://consent") as client,
    ):
        response = await client.post(
            "/v1/consents",
            headers=tokens.bearer(scopes="consent:write"),
            json={
                "patient": {"bsn": "999999990"},
                "recipient_types": ["jgz"],
                "method": "verbal",
                "given_at": "2026-11-01",
            },
        )
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "2"
        assert response.json()["type"] == "urn:kansrijk:problem:unavailable"
        assert "999999990" not in response.text
        assert (await client.get("/health/ready")).status_code == 503


async def test_a_consumer_waits_out_a_database_outage_instead_of_dead_lettering(environment: RunEnvironment) -> None:
    """Longer than five backed-off deliveries would last: the message must not reach the dead letters."""
    from services.melding.adapters.orm import processed_messages

    database = environment.database(environment.database_urls["melding"])
    outage_ends = time.monotonic() + 9
    applied: list[str] = []

    async def handler(uow: UnitOfWork, event: IncomingEvent[Any]) -> None:
        if time.monotonic() < outage_ends:
            raise OperationalError("SELECT 1", {}, ConnectionResetError("the database system is shutting down"))
        applied.append(event.message_id)

    async with scratch_vhost(environment, "db-outage") as amqp_url:
        broker = Broker(amqp_url, client_name="kansrijk-test-db-outage")
        consumer = IdempotentConsumer(
            database.unit_of_work,
            broker,
            processed_messages,
            name=f"test-{uuid.uuid4().hex[:6]}",
            queue=EventQueue("kansrijk.test.db-outage", ("test.happened",)),
            handlers={"test.happened": handler},
            contracts={"test.happened": dict},
        )
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        try:
            await consumer.declare()
            channel = await broker.channel()
            exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
            message_id = str(uuid.uuid4())
            await exchange.publish(
                aio_pika.Message(
                    json.dumps({}).encode(),
                    message_id=message_id,
                    type="test.happened",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key="test.happened",
            )
            for _ in range(200):
                if applied:
                    break
                await asyncio.sleep(0.1)
            assert applied == [message_id]
            dead = await channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)
            assert dead.declaration_result.message_count == 0
        finally:
            stop.set()
            await task
            await broker.close()
            await database.dispose()


@pytest.mark.postgres_only
async def test_postgresql_commits_are_durable_on_every_service_connection(environment: RunEnvironment) -> None:
    assert BACKEND == "postgresql"
    for url in environment.database_urls.values():
        database = Database(url)
        try:
            async with database.engine.connect() as connection:
                assert (await connection.execute(text("SHOW synchronous_commit"))).scalar_one() == "on"
        finally:
            await database.dispose()


@pytest.mark.postgres_only
async def test_pooled_connections_postgresql_closed_are_replaced_without_an_error(
    environment: RunEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What pool_pre_ping did, without its three round trips per transaction (shared.db._check_on_checkout)."""
    import asyncpg

    from shared import db as db_module

    database = Database(environment.database_urls["consent"])
    try:

        async def backend_pids() -> set[int]:
            pids = set()
            async with database.engine.connect() as connection:
                pids.add((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            return pids

        async def terminate(pids: set[int]) -> None:
            admin = await asyncpg.connect(environment.database_urls["consent"].replace("+asyncpg", ""))
            try:
                for pid in pids:
                    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            finally:
                await admin.close()
            await asyncio.sleep(0.3)  # the closed socket reaches the pooled connection

        # Closed by PostgreSQL (a restart, an administrator): replaced as it is taken, no round trip.
        first = await backend_pids()
        await terminate(first)
        second = await backend_pids()
        assert second and second != first

        # Idle for longer than the limit: pinged before use. A ping that fails replaces the connection.
        monkeypatch.setattr(db_module, "PING_IDLE_AFTER_SECONDS", 0.0)
        pings: list[str] = []
        from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

        real_ping: Callable[[AsyncAdapt_asyncpg_connection], None] = AsyncAdapt_asyncpg_connection.ping

        def failing_ping(self: AsyncAdapt_asyncpg_connection) -> None:
            # Only this test's connections count: the running stack's relays in this process ping theirs too
            # (the patched limit holds for every engine), which made this test fail now and then in CI.
            # (SQLAlchemy types `_connection` as its own protocol; it is asyncpg's Connection)
            if self._connection.get_server_pid() not in second | set(ours):  # type: ignore[attr-defined]
                real_ping(self)
                return
            pings.append("ping")
            if len(pings) == 1:
                raise ConnectionError("no answer")  # as from a connection a network fault has cut
            real_ping(self)

        ours: list[int] = []

        @event.listens_for(database.engine.sync_engine, "connect")
        def _opened(dbapi_connection: Any, record: Any) -> None:
            ours.append(dbapi_connection._connection.get_server_pid())

        monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", failing_ping)
        third = await backend_pids()
        assert pings == ["ping"] and third != second  # the unanswered connection was not handed out
    finally:
        await database.dispose()


async def test_a_refused_vhost_is_logged_as_an_error_with_its_fix_at_every_retry(
    environment: RunEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    import structlog
    from structlog.testing import capture_logs

    from shared.messaging import broker as broker_module

    url = environment.amqp_url.rsplit("/", 1)[0] + f"/absent-{uuid.uuid4().hex[:6]}"
    broker = Broker(url, client_name="test")
    with capture_logs() as logs, pytest.raises(aio_pika.exceptions.AMQPError):
        # A logger made now: the module's own may already be bound to the JSON output by an earlier test.
        monkeypatch.setattr(broker_module, "log", structlog.get_logger("test"))
        await broker.connect(attempts=3)
    said = [entry for entry in logs if entry["event"] == "broker_unavailable"]
    assert len(said) == 2 and all(entry["log_level"] == "error" for entry in said)
    assert "refused to open vhost" in said[0]["cause"] and "rabbitmqctl add_vhost" in said[0]["fix"]


async def test_a_broker_with_a_node_list_connects_to_a_node_that_is_up_and_moves_on_when_its_node_goes(
    environment: RunEnvironment,
) -> None:
    """KANSRIJK_AMQP_NODES: two "nodes" (proxies to this machine's RabbitMQ), the first down at the start;
    then the one in use goes down and the connection (its robust channel included) continues on the other."""
    first, second = TcpProxy(), TcpProxy()
    await second.open()  # the first is not listening: a node that is down
    nodes = [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    broker = Broker(environment.amqp_url, client_name="kansrijk-test-failover", nodes=nodes)
    try:
        await broker.connect(attempts=3)
        assert broker.is_connected and broker.connection is not None
        assert _port(broker) == second.port
        channel = await broker.channel()
        await first.open()
        await second.close()  # the node in use goes away: the connection moves on
        started = time.monotonic()
        while time.monotonic() - started < 30:
            if broker.is_connected and _port(broker) == first.port:
                break
            await asyncio.sleep(0.25)
        assert broker.is_connected and _port(broker) == first.port, "no failover to the other node"
        confirmed = await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key="nowhere", timeout=5)
        assert confirmed is not None  # the same (robust) channel publishes on the new node
    finally:
        await broker.close()
        await first.close()
        await second.close()


async def test_a_failover_connection_skips_a_node_that_is_down_on_its_way_to_one_that_is_up(
    environment: RunEnvironment,
) -> None:
    """Three nodes: the one in use goes, the next is down too, the third is up. The connection moves on at
    the lost connection and again at the failed attempt: both reach aio-pika's public `close_callbacks`
    (an upgrade that stopped calling it for a failed attempt would strand the connection on the down node)."""
    from shared.messaging.broker import FailoverConnection

    first, down, third = TcpProxy(), TcpProxy(), TcpProxy()
    await first.open()
    await third.open()
    urls = [environment.amqp_url_via(proxy.port) for proxy in (first, down, third)]
    connection = FailoverConnection(urls, reconnect_interval=0.2)
    try:
        await connection.connect(timeout=10)
        assert connection.url.port == first.port
        await first.close()  # the node in use goes; the next one is down as well
        started = time.monotonic()
        while not (connection.connected.is_set() and connection.url.port == third.port):
            assert time.monotonic() - started < 30, f"stuck on port {connection.url.port}"
            await asyncio.sleep(0.1)
        assert connection.failovers >= 2  # away from the lost node, and on past the one that is down
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key="nowhere", timeout=5)
    finally:
        await connection.close()
        for proxy in (first, down, third):
            await proxy.close()


def test_the_node_list_setting_is_host_and_port_pairs() -> None:
    from shared.messaging.broker import node_urls
    from shared.settings import ServiceSettings

    settings = ServiceSettings(amqp_url="amqp://u:p@mq:5672/v?heartbeat=5", amqp_nodes="a:5671, b:5672")
    assert settings.amqp_nodes == ["a:5671", "b:5672"]
    assert node_urls(settings.amqp_url, settings.amqp_nodes) == [
        "amqp://u:p@a:5671/v?heartbeat=5", "amqp://u:p@b:5672/v?heartbeat=5"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="host:port"):
        ServiceSettings(amqp_nodes="just-a-host")


def _port(broker: Broker) -> int | None:
    """The port of the node the broker is connected to."""
    assert isinstance(broker.connection, aio_pika.RobustConnection)
    return broker.connection.url.port
