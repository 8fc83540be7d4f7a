"""Database: one async engine per service, and the unit of work that is the only place that commits."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, cast

from sqlalchemy import Column, ColumnElement, DateTime, Executable, MetaData, Row, Table, Text, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator

from shared.crypto import CipherError, FieldCipher

# Constraint names fixed once, so that migrations are stable on every database (fastapi-best-practices).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def is_database_unavailable(exc: BaseException) -> bool:
    """A fault of the database being there (restarting, unreachable, a dropped connection, SQLite busy),
    not of the data: worth waiting out and retrying, never a reason to give up on a message or a request.
    A pool with no free connection within its timeout (`PoolTimeout`, not a DBAPIError) is one too."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError, ConnectionError, TimeoutError, PoolTimeout)) or (
        isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)
    )


# A pooled connection unused for longer than this is pinged before it is handed out.
PING_IDLE_AFTER_SECONDS = 5.0


def _check_on_checkout(engine: AsyncEngine) -> None:
    """Hand out only live connections, without a round trip for the ones in steady use.

    `pool_pre_ping` costs three round trips (BEGIN, a ping, ROLLBACK) on every checkout - as many again as
    a typical transaction here. Instead: a connection whose socket is closed (PostgreSQL restarted or
    killed it: asyncpg sees that without asking) is replaced at no cost, and one idle for longer than
    PING_IDLE_AFTER_SECONDS (which a silent network fault may have cut) is pinged first. Raising
    DisconnectionError makes the pool replace the connection and try again.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.driver_connection.is_closed():
            raise DisconnectionError("the pooled connection was closed")
        idle_since = record.info.pop("idle_since", None)
        if idle_since is not None and time.monotonic() - idle_since > PING_IDLE_AFTER_SECONDS:
            try:
                dbapi_connection.ping()
            except Exception as exc:
                raise DisconnectionError("the pooled connection did not answer a ping") from exc


class UTCDateTime(TypeDecorator[datetime]):
    """A moment in time, stored in UTC and returned timezone-aware on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def attach_cipher(engine: Any, cipher: FieldCipher | None) -> None:
    """Give an engine's encrypted columns their key ring (each engine its own: tests run several)."""
    engine.sync_engine.dialect.kansrijk_cipher = cipher


def _cipher_of(dialect: Any) -> FieldCipher:
    cipher = getattr(dialect, "kansrijk_cipher", None)
    if cipher is None:
        raise CipherError("this database has no field cipher: build it with Database(url, cipher=...)")
    return cast(FieldCipher, cipher)


class EncryptedText(TypeDecorator[str]):
    """Text stored encrypted under the engine's key ring (`shared.crypto.FieldCipher`); `purpose`
    (table.column) is authenticated with it. Here rather than in `shared.crypto`, so that what only encrypts
    (the portal) does not import SQLAlchemy."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else _cipher_of(dialect).encrypt(value, self.purpose)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else _cipher_of(dialect).decrypt(value, self.purpose)


def new_metadata() -> MetaData:
    """A service's metadata, with the shared naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def _prepare_sqlite(engine: AsyncEngine) -> None:
    """Make SQLite safe for a relay, consumers and the API writing one file at once.

    WAL lets readers run beside the writer; `BEGIN IMMEDIATE` takes the write lock at the start of a
    transaction, so two read-then-write transactions queue on the busy timeout instead of failing
    with a stale snapshot half-way.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine and session factory of one service's database.

    `hide_parameters`: a database error's text never carries the values (a BSN) of the statement.
    """

    def __init__(
        self,
        url: str,
        *,
        cipher: FieldCipher | None = None,
        pool_size: int = 10,
        max_overflow: int = 10,
        pool_timeout: float = 30.0,
    ) -> None:
        parsed = make_url(url)
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
            _prepare_sqlite(self.engine)
        else:
            # Sized for a small machine; a pooled connection is checked as it is taken (see _check_on_checkout).
            self.engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout, hide_parameters=True
            )
            _check_on_checkout(self.engine)
        # The key ring of its encrypted columns (EncryptedText) and of BSN lookups.
        attach_cipher(self.engine, cipher)
        self._cipher = cipher
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._hand_offs: dict[str, HandOff] = {}

    @property
    def cipher(self) -> FieldCipher:
        if self._cipher is None:
            raise CipherError("this database has no field cipher: build it with Database(url, cipher=...)")
        return self._cipher

    def hand_off_to(self, table: str, receiver: HandOff | None) -> None:
        """Rows staged in `table` go to `receiver` after their COMMIT (the outbox relay); None: to nobody."""
        if receiver is None:
            self._hand_offs.pop(table, None)
        else:
            self._hand_offs[table] = receiver

    def hand_off(self, table: str) -> HandOff | None:
        """Who takes the rows staged in `table` after COMMIT in this process, if anybody does."""
        return self._hand_offs.get(table)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


class HandOff(Protocol):
    """Takes rows a transaction staged, once it committed (shared.messaging.outbox.OutboxRelay)."""

    def lease_until(self) -> datetime | None:
        """Until when rows staged now are the receiver's to publish; None if it takes none now."""

    def take(self, rows: list[dict[str, Any]]) -> None:
        """The rows as staged, after their COMMIT (synchronous: it only queues them)."""


# The order of the before-commit hooks that take locks (UnitOfWork.before_commit).
HOOK_AUDIT = 1  # the audit records, on a chain head no other transaction holds (shared.audit)
HOOK_NUMBERING = 2  # a recipient's queue messages, numbered on its counter: last, the shortest hold


class UnitOfWork:
    """A transaction: rolled back unless `commit()` is called. The only place in the code that commits.

    Each service's unit of work (its `service_layer/unit_of_work.py`) extends this one with what a use case
    works with — its repositories, `outbox`, `audit` — opened on the transaction's session in `__aenter__`.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._handed: list[tuple[HandOff, list[dict[str, Any]]]] = []
        self._after_commit: list[Callable[[], None]] = []
        self._session: AsyncSession | None = None
        # What is written at commit, last in the transaction (the audit records, see shared.audit).
        self.staged: dict[str, Any] = {}
        self._before_commit: dict[str, tuple[int, Callable[[UnitOfWork, str], Awaitable[None]]]] = {}
        # What is written after this transaction ends, whether it committed or not (refused accesses).
        self._after_close: list[Callable[[], Awaitable[None]]] = []

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self.database.sessionmaker()
        self._handed, self._after_commit = [], []
        self.staged, self._before_commit, self._after_close = {}, {}, []
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._handed, self._after_commit = [], []  # rolled back: nothing was staged
        try:
            await self.session.rollback()
        finally:
            await self.session.close()
            self._session = None
        # Only now: run in this transaction, a second one would wait for its locks (SQLite's write lock).
        hooks, self._after_close = self._after_close, []
        for hook in hooks:
            await hook()

    def after_close(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook()` once this transaction has ended, committed or rolled back."""
        self._after_close.append(hook)

    def hand_off_after_commit(self, receiver: HandOff, rows: list[dict[str, Any]]) -> None:
        """Give `rows` (staged in this transaction) to `receiver` once this transaction committed; never if
        it rolls back."""
        self._handed.append((receiver, rows))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once this transaction committed; never if it rolls back (what a process may only
        believe of the database once it is so: the audit chain heads it knows, see shared.audit)."""
        self._after_commit.append(callback)

    def before_commit(self, key: str, hook: Callable[[UnitOfWork, str], Awaitable[None]], *, order: int = 0) -> None:
        """Run `hook(self, key)` once, just before the next commit (hooks of one key are registered once).

        Hooks run by `order` (then as registered), whatever the order the use case staged things in. The
        hooks that take locks (the audit chain's head: HOOK_AUDIT; a recipient's sequence counter:
        HOOK_NUMBERING) run in the same order in every transaction, so two transactions never take them in
        opposite orders (a deadlock on PostgreSQL), and the contended one last, held for the least time."""
        self._before_commit.setdefault(key, (order, hook))

    async def commit(self) -> None:
        hooks, self._before_commit = self._before_commit, {}
        for key, (_, before) in sorted(hooks.items(), key=lambda item: item[1][0]):
            await before(self, key)
        handed, self._handed = self._handed, []
        callbacks, self._after_commit = self._after_commit, []
        await self.session.commit()
        for callback in callbacks:
            callback()
        for receiver, rows in handed:
            receiver.take(rows)


async def insert_once(session: AsyncSession, table: Table, **values: Any) -> bool:
    """Insert the row unless its key is taken (ON CONFLICT DO NOTHING); True if this call inserted it.

    Unlike catching IntegrityError, the transaction stays usable on PostgreSQL; a concurrent insert of the
    same key waits for the other transaction and then finds the key taken.
    """
    assert session.bind is not None
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    result = await session.execute(insert(table).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def insert_new(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]], *, returning: Column[Any]
) -> set[Any]:
    """Insert the rows whose key is free, in one statement (`INSERT … ON CONFLICT DO NOTHING RETURNING`);
    returns `returning`'s values of the rows this call inserted. A concurrent insert of the same key waits
    for the other transaction and then finds the key taken, as with `insert_once`."""
    assert session.bind is not None
    if not rows:
        return set()
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    # The rows as parameters, not `.values(rows)`: SQLAlchemy sends them as one multi-row INSERT either way
    # ("insertmanyvalues"), but a statement with its rows in `.values()` has no cache key and is compiled
    # again on every execution (a quarter of the melding service's CPU, py-spy).
    result = await session.execute(insert(table).on_conflict_do_nothing().returning(returning), rows)
    return set(result.scalars())


async def lock_row_creating(
    session: AsyncSession, table: Table, *, also: Sequence[ColumnElement[Any]] = (), **key: Any
) -> Row[Any]:
    """The row of `table` with this key (created empty if missing), locked until the transaction ends.

    What two transactions must not interleave on (intake and a withdrawal of one consent) takes this lock
    first. One statement: `INSERT … ON CONFLICT DO UPDATE … RETURNING` creates the row if it is missing and
    otherwise writes its key over itself, which locks it (on PostgreSQL a row lock, as `FOR UPDATE` would; on
    SQLite the write lock `BEGIN IMMEDIATE` already holds). Creating it means there is always a row to lock,
    even for the first of two transactions. `also`: more to return with the row (a scalar subquery, say).
    """
    [row] = await lock_rows_creating(session, table, [key], also=also)
    return row


async def lock_rows_creating(
    session: AsyncSession, table: Table, keys: Sequence[dict[str, Any]], *, also: Sequence[ColumnElement[Any]] = ()
) -> list[Row[Any]]:
    """`lock_row_creating` of several keys (each the same primary-key columns) in one statement, locked in key
    order — the order every transaction locks them in, so two batches that share keys wait for each other
    instead of deadlocking."""
    if not keys:
        return []
    assert session.bind is not None
    columns = sorted(keys[0])
    ordered = sorted({tuple(key[c] for c in columns) for key in keys})
    # The keys as parameters: one multi-row INSERT in key order, of a statement SQLAlchemy can cache (see
    # `insert_new`), itself built once.
    keyed = [dict(zip(columns, values, strict=True)) for values in ordered]
    statement = _lock_statement(table, tuple(columns), session.bind.dialect.name, tuple(also))
    return list((await session.execute(statement, keyed)).all())


@functools.lru_cache(maxsize=64)  # bounded: a caller that makes a new `also` each time only misses
def _lock_statement(table: Table, columns: tuple[str, ...], dialect: str, also: tuple[Any, ...]) -> Executable:
    """`lock_rows_creating`'s statement, built once per table and `also` (pass the same `also` objects, made
    once, for this to hold: a clause is known by its identity)."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    rows = insert(table)
    upsert = rows.on_conflict_do_update(index_elements=list(columns), set_={columns[0]: rows.excluded[columns[0]]})
    return upsert.returning(*table.c, *also)
