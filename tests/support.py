"""Test infrastructure: per-run RabbitMQ vhost and databases, tokens, a TCP proxy for broker faults."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import struct
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import asyncpg
import pytest
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker

from shared.auth import SigningKey, development_token, load_or_create_dev_key
from shared.crypto import FieldCipher, load_or_create_dev_cipher
from shared.db import Database
from shared.settings import ServiceSettings

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
    from fastapi import FastAPI

SERVICES = ("consent", "melding", "routing", "fhir")
BACKEND = os.environ.get("KANSRIJK_TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get("KANSRIJK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("KANSRIJK_TEST_AMQP_BASE", "amqp://guest:guest@127.0.0.1:5672")
RABBITMQCTL = shutil.which("rabbitmqctl") or "rabbitmqctl"
# The CBS reference files the routing service ships (and `kansrijk directory load` loads by default).
CBS_DATA = Path(__file__).resolve().parents[1] / "services" / "routing" / "reference_data"


def rabbitmqctl(*args: str) -> None:
    subprocess.run([RABBITMQCTL, "-q", *args], check=True, capture_output=True, timeout=60)


@dataclass
class RunEnvironment:
    """Where this test run lives: its own vhost, its own databases, its own data dir."""

    run_id: str
    backend: str
    data_dir: Path
    vhost: str
    database_urls: dict[str, str] = field(default_factory=dict)

    @property
    def amqp_url(self) -> str:
        return f"{AMQP_BASE}/{quote(self.vhost, safe='')}"

    def amqp_url_via(self, port: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{port}/{quote(self.vhost, safe='')}"

    def env(self) -> dict[str, str]:
        """Environment for a `kansrijk` subprocess of this run."""
        out = {"KANSRIJK_DATA_DIR": str(self.data_dir), "KANSRIJK_AMQP_URL": self.amqp_url}
        for service, url in self.database_urls.items():
            out[f"KANSRIJK_{service.upper()}_DATABASE_URL"] = url
        return out

    @property
    def dev_key(self) -> SigningKey:
        return load_or_create_dev_key(self.data_dir / "keys")

    @property
    def cipher(self) -> FieldCipher:
        """The development key ring the services of this run encrypt personal data with."""
        return load_or_create_dev_cipher(self.data_dir / "keys")

    def database(self, url: str) -> Database:
        """A service's database as the service opens it (its encrypted columns readable)."""
        return Database(url, cipher=self.cipher)


async def create_environment(base_dir: Path) -> RunEnvironment:
    run_id = uuid.uuid4().hex[:10]
    environment = RunEnvironment(
        run_id=run_id, backend=BACKEND, data_dir=base_dir / "data", vhost=f"kansrijk-test-{run_id}"
    )
    await asyncio.to_thread(rabbitmqctl, "add_vhost", environment.vhost)
    await asyncio.to_thread(rabbitmqctl, "set_permissions", "-p", environment.vhost, "guest", ".*", ".*", ".*")
    for service in SERVICES:
        environment.database_urls[service] = await create_database(environment, service)
    return environment


async def create_database(environment: RunEnvironment, service: str, suffix: str = "") -> str:
    name = f"kansrijk_{environment.run_id}_{service}{suffix}"
    if environment.backend == "postgresql":
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        host_part = POSTGRES_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0]
        return f"postgresql+asyncpg://{host_part}/{name}"
    environment.data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{environment.data_dir / (name + '.db')}"


async def drop_database(environment: RunEnvironment, url: str) -> None:
    if environment.backend == "postgresql":
        name = url.rsplit("/", 1)[1]
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


async def destroy_environment(environment: RunEnvironment) -> None:
    for url in environment.database_urls.values():
        await drop_database(environment, url)
    await asyncio.to_thread(rabbitmqctl, "delete_vhost", environment.vhost)


@contextlib.asynccontextmanager
async def rolled_back(database: Database) -> AsyncIterator[Database]:
    """Every unit of work on `database` inside the block joins one outer transaction on one connection, which is
    rolled back at the end: a unit of work's commit releases a savepoint, its rollback rolls back to it
    (SQLAlchemy's "joining a session into an external transaction"). Nothing a test writes outlives it, so the
    next test finds the tables as migrated, without emptying them. Only for code that stays on this one
    connection: not for concurrent transactions and the locks between them, nor for an outbox relay or a
    consumer that reads on a connection of its own."""
    opened = database.sessionmaker
    async with database.engine.connect() as connection:
        outer = await connection.begin()
        database.sessionmaker = async_sessionmaker(
            bind=connection, expire_on_commit=False, autoflush=False, join_transaction_mode="create_savepoint"
        )
        try:
            yield database
        finally:
            database.sessionmaker = opened
            await outer.rollback()


async def _truncate(database: Database, tables_of: Callable[[Any], list[str]]) -> None:
    async with database.engine.connect() as connection:
        names = await connection.run_sync(tables_of)
        if names:
            await connection.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " CASCADE"))
            await connection.commit()


async def empty_tables(database: Database) -> None:
    """Each test starts from migrated, empty tables."""

    def dependants_first(sync_connection: Any) -> list[str]:
        metadata = MetaData()
        metadata.reflect(sync_connection)
        return [t.name for t in reversed(metadata.sorted_tables) if t.name != "alembic_version"]

    if database.engine.dialect.name == "postgresql":
        # A running stack writes while a test empties its tables (the consent feed's heartbeat, every second):
        # PostgreSQL may end one of the two as a deadlock. The stack's side retries by itself; this side too.
        for attempt in range(5):
            try:
                await _truncate(database, dependants_first)
                return
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != "40P01" or attempt == 4:  # deadlock_detected
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))
    async with database.engine.connect() as connection:
        names = await connection.run_sync(dependants_first)
        if not names:
            return
        # TRUNCATE skips row triggers on PostgreSQL; on SQLite the append-only triggers of the audit log are set
        # aside while the tables are emptied, and put back as they were.
        triggers = list(await connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")))
        for name, _ in triggers:
            await connection.execute(text(f'DROP TRIGGER "{name}"'))
        for name in names:
            await connection.execute(text(f'DELETE FROM "{name}"'))
        for _, sql in triggers:
            await connection.execute(text(sql))
        await connection.commit()


class Tokens:
    """Development tokens for this run's services, minted as `kansrijk token` mints them."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = ServiceSettings(data_dir=data_dir)

    def bearer(
        self,
        *,
        org_id: str = "12345678",
        org_type: str = "verloskundige",
        scopes: str = "",
        sub: str = "test-user",
        ttl: int = 600,
    ) -> dict[str, str]:
        token = development_token(
            self.settings,
            org_id=org_id,
            org_type=org_type,
            scopes=scopes,
            sub=sub,
            ttl_seconds=ttl,
        )
        return {"Authorization": f"Bearer {token}"}


class TcpProxy:
    """A loopback TCP proxy to RabbitMQ that a test uses to play network faults between a service and the broker.

    `close()`/`open()`: the broker is down (connections cut, new ones refused) and back. `blackhole()`:
    connections stay open but no byte passes either way until `restore()` — a dead link, which only
    heartbeats and timeouts can notice. `latency`: every chunk arrives that many seconds late (order kept).
    `reset()`: every open connection is aborted with a TCP RST; new ones are let through.
    """

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5672) -> None:
        self.target = (target_host, target_port)
        self.port = _free_port()
        self.latency = 0.0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def close(self) -> None:
        """Stop listening and cut every open connection: the broker is "down"."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self._cut(abort=False)

    def blackhole(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self.latency = 0.0
        self._flowing.set()

    def reset(self) -> int:
        """Abort every open connection with a RST (the peers see "connection reset"). Returns how many."""
        count = len(self._writers) // 2
        self._cut(abort=True)
        return count

    def _cut(self, *, abort: bool) -> None:
        for writer in list(self._writers):
            if abort:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()
        self._writers.clear()
        for task in list(self._pipes):
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, upstream_writer})
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction: each chunk is held while blackholed and delayed by `latency`, in order."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await chunks.get()
                if data == b"":
                    break
                await self._flowing.wait()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(65536):
                chunks.put_nowait((loop.time() + self.latency, data))
            chunks.put_nowait((0.0, b""))
            await sender
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(Exception):
                writer.close()
            self._writers.discard(writer)


def _free_port() -> int:
    """A free port below the kernel's ephemeral range (32768-60999 on Linux): a port handed out from that
    range can be taken by an outgoing connection before the server that was meant to have it binds it."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port in _HANDED_OUT:  # given to a server that may not have bound it yet
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port between 20000 and 32000")


_HANDED_OUT: set[int] = set()


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """Run an app's lifespan (workers included) around a block."""
    async with app.router.lifespan_context(app):
        yield


async def collect(
    queue: AbstractQueue, *, expected: int, timeout: float, settle: float = 0.5
) -> list[AbstractIncomingMessage]:
    """Messages from `queue` until `expected` arrived and `settle` seconds pass quietly, or `timeout`."""
    received: list[AbstractIncomingMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    quiet_until: float | None = None
    while loop.time() < deadline:
        message = await queue.get(no_ack=False, fail=False, timeout=5)
        if message is None:
            if len(received) >= expected:
                if quiet_until is None:
                    quiet_until = loop.time() + settle
                elif loop.time() >= quiet_until:
                    break
            await asyncio.sleep(0.05)
            continue
        quiet_until = None
        await message.ack()
        received.append(message)
    return received


@contextlib.asynccontextmanager
async def scratch_vhost(environment: RunEnvironment, name: str) -> AsyncIterator[str]:
    """A vhost of its own for one test (no other consumer competes there); yields its AMQP URL."""
    vhost = f"{environment.vhost}-{name}"
    await asyncio.to_thread(rabbitmqctl, "add_vhost", vhost)
    await asyncio.to_thread(rabbitmqctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"{AMQP_BASE}/{quote(vhost, safe='')}"
    finally:
        await asyncio.to_thread(rabbitmqctl, "delete_vhost", vhost)


# --- the recipient's kit in TypeScript (examples/recipient-typescript) -------------------------------------

TS_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "recipient-typescript"
NPM = shutil.which("npm")
needs_node = pytest.mark.skipif(
    (NPM is None or shutil.which("node") is None) and not os.environ.get("CI"),
    reason="needs Node.js and npm (on every machine of this kind; CI fails instead of skipping)",
)


def ts_example_installed() -> Path:
    """The TypeScript example with its packages installed from its lock file (once per checkout and lock)."""
    assert NPM is not None, "Node.js and npm are needed (CI has them)"
    lock = (TS_EXAMPLE / "package-lock.json").read_bytes()
    stamp = TS_EXAMPLE / "node_modules" / ".kansrijk-lock"
    if not stamp.exists() or stamp.read_bytes() != lock:
        subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=TS_EXAMPLE, check=True, capture_output=True)
        stamp.write_bytes(lock)
    return TS_EXAMPLE


@contextlib.contextmanager
def compiled_again(database: Database) -> Iterator[list[str]]:
    """The statements sent on `database` inside the block that SQLAlchemy compiled instead of taking from its
    cache: a first use, or a statement without a cache key (one that holds its data, as `.values([rows])` or
    `VALUES` does), which is compiled again on every execution. A hot path sends none once it has run."""
    compiled: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
            return  # the test's own rollback (tests.support.rolled_back), not the code under test
        if context is not None and context.compiled is not None and context.cache_hit is not CacheStats.CACHE_HIT:
            compiled.append(f"{context.cache_hit.name}: {' '.join(statement.split())[:100]}")

    with _each_statement(database, note):
        yield compiled


@contextlib.contextmanager
def counted_statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements sent on `database` inside the block, by their first word (an executemany is one):
    what a set-based use case promises is that their number does not grow with its batch."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    with _each_statement(database, count):
        yield seen


@contextlib.contextmanager
def _each_statement(database: Database, listener: Callable[..., None]) -> Iterator[None]:
    """`listener` sees every statement sent on `database` inside the block (SQLAlchemy's before_cursor_execute)."""
    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", listener)
