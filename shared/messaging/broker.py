"""One robust RabbitMQ connection per process, with the topology declared on it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aio_pika.robust_connection import RobustConnection
from yarl import URL

from shared.messaging.topology import declare_topology

log = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 5  # aiormq gives up on a silent peer after (5 + 1) × 3 = 18 s; the broker after ~10 s


@dataclass(frozen=True)
class BrokerProblem:
    """Why RabbitMQ could not be used, in an operator's words, and what to do about it."""

    cause: str
    fix: str
    configuration: bool  # the URL is wrong (login, vhost): waiting alone will not help


def explain_broker_error(exc: BaseException, url: str) -> BrokerProblem:
    """Name the cause of a failed connection to RabbitMQ and its fix (the URL shown without its password)."""
    parsed = URL(url)
    where = f"{parsed.host}:{parsed.port or 5672}"
    vhost = parsed.path[1:] or "/"
    user = parsed.user or "guest"
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError | aiormq.exceptions.AuthenticationError):
        return BrokerProblem(
            f"RabbitMQ at {where} refused the login of user {user!r}",
            "check the user and password in KANSRIJK_AMQP_URL",
            configuration=True,
        )
    if isinstance(exc, aiormq.exceptions.InvalidFrameError | aiormq.exceptions.ConnectionNotAllowed):
        # RabbitMQ closes the connection instead of opening it: the vhost does not exist or the user may not use it.
        return BrokerProblem(
            f"RabbitMQ at {where} refused to open vhost {vhost!r} for user {user!r}: it does not exist or the user "
            "has no permissions on it",
            f"create it (rabbitmqctl add_vhost {vhost}; rabbitmqctl set_permissions -p {vhost} {user} '.*' '.*' '.*') "
            "or correct the vhost in KANSRIJK_AMQP_URL",
            configuration=True,
        )
    return BrokerProblem(
        f"RabbitMQ at {where} cannot be reached ({type(exc).__name__})",
        "start RabbitMQ, or correct the host and port in KANSRIJK_AMQP_URL; retrying meanwhile",
        configuration=False,
    )


def node_urls(url: str, nodes: Sequence[str] = ()) -> list[str]:
    """`url` on each of a cluster's nodes (`host:port`), or `url` alone."""
    parsed = URL(url)
    if not nodes:
        return [url]
    return [str(parsed.with_host(node.rpartition(":")[0]).with_port(int(node.rpartition(":")[2]))) for node in nodes]


class FailoverConnection(RobustConnection):
    """A robust connection over a cluster's nodes: every (re)connection attempt goes to the next node, so a
    lost node is left for one that is up. aiormq connects to one URL, and aio-pika's robust connection
    reconnects to `url`; this moves `url` on to the next node whenever the connection closes or an attempt
    fails. Public API only: aio-pika calls `close_callbacks` for a lost connection and for a failed attempt
    alike, before the robust connection's next attempt (tests/integration/shared/test_resilience.py holds
    an upgrade to that)."""

    def __init__(self, urls: Sequence[str], **kwargs: Any) -> None:
        super().__init__(URL(urls[0]), **kwargs)
        self.node_urls = [URL(u) for u in urls]
        self.failovers = 0  # how often `url` moved on
        self._left: object = None  # the transport whose loss moved `url` last
        self.close_callbacks.add(self._next_node)

    def _next_node(self, _connection: object, _exc: BaseException | None = None) -> None:
        if self.close_called:  # closed by us: nothing to reconnect to
            return
        # A failed attempt has no transport; a lost one is reported once or, when restoring the channels
        # failed right after connecting, twice: it moves `url` on once.
        if self.transport is not None:
            if self.transport is self._left:
                return
            self._left = self.transport
        self.failovers += 1
        self.url = self.node_urls[self.failovers % len(self.node_urls)]


async def connect_failover(urls: Sequence[str], *, timeout: float = 10, **kwargs: Any) -> FailoverConnection:
    """A FailoverConnection, connected to the first node that answers (the first attempt fails fast in
    aio-pika: each node is tried in turn). Raises the last node's error if none answers."""
    for index in range(len(urls)):
        connection = FailoverConnection([*urls[index:], *urls[:index]], **kwargs)
        try:
            await connection.connect(timeout=timeout)
            return connection
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError):
            await connection.close()
            if index == len(urls) - 1:
                raise
    raise ValueError("no node to connect to")


class Broker:
    """The process's connection. `connect()` waits for the broker with backoff instead of failing."""

    def __init__(self, url: str, *, client_name: str, nodes: Sequence[str] = ()) -> None:
        parsed = URL(url)
        if "heartbeat" not in parsed.query:
            parsed = parsed.update_query(heartbeat=HEARTBEAT_SECONDS)
        self.url = str(parsed)
        self.urls = node_urls(self.url, nodes)
        self.client_name = client_name
        self.connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._lock = asyncio.Lock()

    @property
    def is_connected(self) -> bool:
        return self.connection is not None and self.connection.connected.is_set()

    async def connect(self, *, attempts: int | None = None) -> AbstractRobustConnection:
        """Connect, retrying with backoff (forever unless `attempts` is given)."""
        async with self._lock:
            if self.connection is not None:
                return self.connection
            delay, tried = 0.5, 0
            while True:
                tried += 1
                try:
                    self.connection = await connect_failover(
                        self.urls, client_properties={"connection_name": self.client_name}, timeout=10
                    )
                    break
                except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
                    if attempts is not None and tried >= attempts:
                        raise
                    problem = explain_broker_error(exc, self.url)
                    # A refused login or vhost is a configuration error: said loudly, every time (it may be
                    # fixed while we wait, so we keep trying).
                    (log.error if problem.configuration else log.warning)(
                        "broker_unavailable",
                        cause=problem.cause,
                        fix=problem.fix,
                        retry_in_s=delay,
                        error_type=type(exc).__name__,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            channel = await self.connection.channel(publisher_confirms=True)
            await declare_topology(channel)
            self._channel = channel
            log.info("broker_connected")
            return self.connection

    async def channel(self) -> AbstractRobustChannel:
        """The shared publishing channel (publisher confirms on); a robust channel survives reconnects."""
        if self._channel is None:
            await self.connect()
        assert self._channel is not None
        return self._channel

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
        self.connection = None
        self._channel = None
