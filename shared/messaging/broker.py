"""One robust RabbitMQ connection per process, with the topology declared on it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
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


class Broker:
    """The process's connection. `connect()` waits for the broker with backoff instead of failing."""

    def __init__(self, url: str, *, client_name: str) -> None:
        parsed = URL(url)
        if "heartbeat" not in parsed.query:
            parsed = parsed.update_query(heartbeat=HEARTBEAT_SECONDS)
        self.url = str(parsed)
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
                    self.connection = await aio_pika.connect_robust(
                        self.url, client_properties={"connection_name": self.client_name}, timeout=10
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
