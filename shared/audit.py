"""The audit log (NEN 7513): one append-only, hash-chained record per access to personal data.

A record is staged on the unit of work and written when it commits, in the same transaction as the
access it describes: an access that happened is never missing from the log, and one that was rolled
back leaves none. Accesses that are refused (another organisation's resource, no consent) are written
by `record_refusal` in a transaction of their own once the refused request's transaction (which rolls
back) has ended.

Records of one service form chains: each record carries its `chain`, its `seq` in that chain (1, 2, 3, …), the
hash of the previous record of the chain and its own hash over its fields. Each chain's head (its last `seq`
and hash) is a row of `audit_chain`, one of `AUDIT_CHAINS`. A process remembers the heads it saw committed,
and which chains its open transactions are writing. At commit (last in the transaction, so no lock-order
deadlock with the data it describes) a transaction takes the lowest-numbered known head none of its process's
other transactions holds, numbers and hashes its records in Python, and appends them in one statement on
PostgreSQL that moves that head only if it is still what the process knew and no other transaction holds it
(`FOR UPDATE SKIP LOCKED`), inserting the records only if it moved. If it did not (a stale head: another
process wrote that chain; or a held one), nothing is written: the transaction locks the lowest-numbered free
head in one SELECT (the one that failed left to the other process), learns it, and appends there. So an append
is one round trip when the head is known (two when none is, three when it was stale); concurrent accesses
never queue behind each other's commit; and a chain never forks (its head moves from the value the records
were hashed on, under the head's lock, and `UNIQUE (chain, seq)` stands behind that). A transaction that rolls
back leaves the heads its process knows as they were. SQLite (one writer at a time) uses chain 1 only, in two
statements. Deleting, reordering or editing a record breaks its chain, which `verify` (`kansrijk audit
verify`) reports. The database refuses UPDATE and DELETE on `audit_log` (triggers, see the migrations), except
the deletion of records past the 5-year retention, which leaves the heads alone.

The patient is stored twice: `patient_bsn` encrypted (shown to `audit:read`), `patient_ref` a keyed
hash (searched by, `POST /v1/audit/_search`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    cast,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql import Executable

from shared.auth import Principal
from shared.clock import now as utcnow
from shared.crypto import FieldCipher
from shared.db import HOOK_AUDIT, Database, EncryptedText, UnitOfWork, UTCDateTime

AUDIT_RETENTION = timedelta(days=5 * 365 + 2)  # NEN 7513 / WGBO practice: five years
GENESIS = "0" * 64
AUDIT_CHAINS = 16  # heads per service: up to this many audited transactions commit side by side
ACTIONS = ("create", "read", "update", "withdraw", "search", "check", "deliver", "retract", "status-change",
           "export")  # fmt: skip
HASHED_FIELDS = ("id", "chain", "seq", "at", "service", "actor_sub", "actor_org_id", "actor_org_type", "action",
                 "resource_type", "resource_id", "patient_ref", "outcome", "consent_checked", "request_id",
                 "prev_hash")  # fmt: skip


@dataclass(frozen=True)
class AuditTables:
    log: Table
    chain: Table


def audit_tables(metadata: MetaData) -> AuditTables:
    log = Table(
        "audit_log",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("chain", Integer, nullable=False, comment="which of the service's hash chains"),
        Column("seq", Integer, nullable=False, comment="position in its chain"),
        Column("at", UTCDateTime(), nullable=False),
        Column("service", String(32), nullable=False),
        Column("actor_sub", String(200), nullable=False),
        Column("actor_org_id", String(64), nullable=False),
        Column("actor_org_type", String(32), nullable=False),
        Column("action", String(32), nullable=False),
        Column("resource_type", String(32), nullable=False),
        Column("resource_id", String(64), nullable=True),
        Column("patient_ref", String(64), nullable=True, comment="keyed hash of the BSN (shared.crypto)"),
        Column("patient_bsn", EncryptedText("audit_log.patient_bsn"), nullable=True),
        Column("outcome", String(64), nullable=False),
        Column("consent_checked", Boolean, nullable=True, comment="whether a consent check passed (NULL: none)"),
        Column("request_id", String(128), nullable=True),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        UniqueConstraint("chain", "seq"),
        Index("ix_audit_log_at", "at", "id"),
        Index("ix_audit_log_patient_ref", "patient_ref"),
        Index("ix_audit_log_actor_org_id", "actor_org_id", "at"),
    )
    chain = Table(
        "audit_chain",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("seq", Integer, nullable=False),
        Column("hash", String(64), nullable=False),
    )
    return AuditTables(log, chain)


def record_hash(values: dict[str, Any]) -> str:
    canonical = {name: values.get(name) for name in HASHED_FIELDS}
    canonical["at"] = values["at"].isoformat(timespec="microseconds")
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class _Staged:
    tables: AuditTables
    cipher: FieldCipher
    records: list[dict[str, Any]] = field(default_factory=list)


def record_access(
    uow: UnitOfWork,
    tables: AuditTables,
    *,
    service: str,
    principal: Principal,
    action: str,
    resource_type: str,
    resource_id: str | None,
    patient_bsn: str | None,
    request_id: str | None,
    outcome: str = "success",
    consent_checked: bool | None = None,
    patient_ref: str | None = None,
) -> None:
    """Stage one record; it is chained and written when `uow` commits (and dropped if it does not).
    `patient_ref` names the patient by her keyed hash where the BSN is not at hand (her own reads)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    key = f"audit:{tables.log.name}"
    staged = uow.staged.get(key)
    if staged is None:
        staged = uow.staged[key] = _Staged(tables, uow.database.cipher)
        uow.before_commit(key, _write_staged, order=HOOK_AUDIT)
    staged.records.append(
        {
            "id": str(uuid.uuid4()),
            "at": utcnow(),
            "service": service,
            "actor_sub": principal.sub,
            "actor_org_id": principal.org_id,
            "actor_org_type": principal.org_type,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "patient_ref": staged.cipher.bsn_ref(patient_bsn) if patient_bsn else patient_ref,
            "patient_bsn": patient_bsn,
            "outcome": outcome[:64],
            "consent_checked": consent_checked,
            "request_id": request_id,
        }
    )


def record_refusal(uow: UnitOfWork, tables: AuditTables, **fields: Any) -> None:
    """Record a refused access in a transaction of its own once `uow` has ended: the refused request's
    transaction rolls back, and must not hold its locks while the record is written."""

    async def write() -> None:
        async with uow.database.unit_of_work() as own:
            record_access(own, tables, **fields)
            await own.commit()

    uow.after_close(write)


class AuditLog:
    """The audit log as a use case sees it, bound to its unit of work and its service."""

    def __init__(self, uow: UnitOfWork, tables: AuditTables, service: str) -> None:
        self.uow, self.tables, self.service = uow, tables, service

    def record(
        self,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str | None,
        *,
        patient_bsn: str | None,
        request_id: str | None,
        outcome: str = "success",
        consent_checked: bool | None = None,
        patient_ref: str | None = None,
    ) -> None:
        """An access in this transaction: written when it commits, gone if it does not."""
        record_access(
            self.uow,
            self.tables,
            service=self.service,
            principal=principal,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            patient_bsn=patient_bsn,
            request_id=request_id,
            outcome=outcome,
            consent_checked=consent_checked,
            patient_ref=patient_ref,
        )

    def refuse(
        self,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str | None,
        *,
        outcome: str,
        request_id: str | None,
        patient_bsn: str | None = None,
        consent_checked: bool | None = None,
    ) -> None:
        """A refused access: written in a transaction of its own once this one (which rolls back) has ended."""

        async def write() -> None:
            async with self.uow.database.unit_of_work() as own:
                AuditLog(own, self.tables, self.service).record(
                    principal,
                    action,
                    resource_type,
                    resource_id,
                    patient_bsn=patient_bsn,
                    request_id=request_id,
                    outcome=outcome,
                    consent_checked=consent_checked,
                )
                await own.commit()

        self.uow.after_close(write)


# --- writing -------------------------------------------------------------------------------------------

APPEND_CHUNK = 1000  # records per statement: 18 parameters each, well under PostgreSQL's 32,767


@dataclass
class _Heads:
    """What this process knows of one audit log's chain heads: each chain's (seq, hash) as of a COMMIT it saw
    (its own, or a head it read), and which chains its transactions are writing to now. A known head may be
    stale (another process wrote that chain since): the append then changes nothing and is retried."""

    known: dict[int, tuple[int, str]] = field(default_factory=dict)
    held: Counter[int] = field(default_factory=Counter)

    def pick(self, single_writer: bool) -> int | None:
        """The lowest-numbered chain whose head is known and that no transaction of this process holds.
        (SQLite has one writer at a time: chain 1 always.)"""
        if single_writer:
            return 1 if 1 in self.known else None
        return next((chain for chain in sorted(self.known) if not self.held[chain]), None)

    def advance(self, chain: int, head: tuple[int, str]) -> None:
        """After the COMMIT that moved `chain` to `head` (unless the process already knows a later one)."""
        if self.known.get(chain, (0, GENESIS))[0] < head[0]:
            self.known[chain] = head

    def release(self, chain: int) -> None:
        self.held[chain] -= 1
        if self.held[chain] <= 0:
            del self.held[chain]


_HEADS: weakref.WeakKeyDictionary[Database, dict[str, _Heads]] = weakref.WeakKeyDictionary()


def _heads_of(database: Database, chain: Table) -> _Heads:
    return _HEADS.setdefault(database, {}).setdefault(chain.name, _Heads())


async def _write_staged(uow: UnitOfWork, key: str) -> None:
    """Chain the staged records onto a head this process knows and append them in one statement; if that head
    was stale (another process wrote the chain) or is held by another process's transaction, lock a free
    head, learn it, and append there."""
    staged: _Staged = uow.staged.pop(key)
    heads = _heads_of(uow.database, staged.tables.chain)
    single_writer = uow.database.is_sqlite
    chain = heads.pick(single_writer)
    avoid: set[int] = set()
    for _attempt in range(2):
        if chain is None:  # nothing usable known (or it just failed): one SELECT, which locks the head
            locked = await _lock_free_head(uow, staged.tables.chain, avoid | set(heads.held), single_writer)
            chain = locked.id
            heads.known[chain] = (locked.seq, locked.hash)  # committed: this transaction holds its lock
        old = heads.known[chain]
        new = _chain(staged.records, chain, old)
        heads.held[chain] += 1
        try:
            appended = await _append(uow, staged.tables, chain, old, new, staged.records)
        except BaseException:
            heads.release(chain)
            raise
        if appended:  # held until this transaction ends; known to have moved once it committed
            uow.after_close(functools.partial(_release, heads, chain))
            uow.after_commit(functools.partial(heads.advance, chain, new))
            return
        heads.release(chain)
        heads.known.pop(chain, None)  # stale, or another process's transaction is writing it: ask when needed
        avoid.add(chain)
        chain = None
    raise RuntimeError("the audit chain head this transaction locked moved under it")  # pragma: no cover


async def _release(heads: _Heads, chain: int) -> None:
    heads.release(chain)


def _chain(records: list[dict[str, Any]], chain: int, head: tuple[int, str]) -> tuple[int, str]:
    """Number and hash `records` as the successors of `head` on `chain`; returns the chain's new head."""
    seq, previous = head
    for record in records:
        seq += 1
        record.update(chain=chain, seq=seq, prev_hash=previous)
        record["hash"] = previous = record_hash(record)
    return seq, previous


async def _append(
    uow: UnitOfWork,
    tables: AuditTables,
    chain: int,
    old: tuple[int, str],
    new: tuple[int, str],
    records: list[dict[str, Any]],
) -> bool:
    """Move `chain`'s head from `old` to `new` and insert `records`, if the head is still `old` and no other
    transaction holds it; False (nothing written) otherwise.

    PostgreSQL, one statement per APPEND_CHUNK records: `WITH head AS (SELECT … WHERE id AND seq AND hash
    FOR UPDATE SKIP LOCKED), moved AS (UPDATE audit_chain … FROM head RETURNING id) INSERT INTO audit_log …
    SELECT … FROM moved JOIN (VALUES …) ON true`. The lock is taken on the newest version of the head (READ COMMITTED
    re-checks a row another transaction changed since the statement began), so a stale head matches nothing
    and a held one is skipped rather than waited for: two appends never both follow one head (and the
    UNIQUE (chain, seq) would refuse the second if they did).

    SQLite cannot put an UPDATE … RETURNING in a CTE: there the guarded UPDATE and the INSERT are two
    statements, safe because `BEGIN IMMEDIATE` holds the only write lock from the transaction's start."""
    log, heads = tables.log, tables.chain
    session = uow.session
    if uow.database.is_sqlite:
        guarded = await session.execute(
            update(heads)
            .where(heads.c.id == chain, heads.c.seq == old[0], heads.c.hash == old[1])
            .values(seq=new[0], hash=new[1])
        )
        if not guarded.rowcount:  # type: ignore[attr-defined]  # an UPDATE's Result is a CursorResult
            return False
        await session.execute(log.insert(), records)
        return True
    names = [c.name for c in log.columns]
    for start in range(0, len(records), APPEND_CHUNK):
        chunk = records[start : start + APPEND_CHUNK]
        before = (chunk[0]["seq"] - 1, chunk[0]["prev_hash"])
        after = (chunk[-1]["seq"], chunk[-1]["hash"])
        assert start or before == old
        parameters = {"chain": chain, "before_seq": before[0], "before_hash": before[1]}
        parameters |= {"after_seq": after[0], "after_hash": after[1]}
        parameters |= {f"r{i}_{name}": record.get(name) for i, record in enumerate(chunk) for name in names}
        result = await session.execute(_append_statement(log, heads, len(chunk)), parameters)
        if result.rowcount != len(chunk):  # type: ignore[attr-defined]  # an INSERT's Result is a CursorResult
            if start:  # pragma: no cover  # this transaction holds the head since its first chunk
                raise RuntimeError("the audit chain head this transaction holds moved under it")
            return False
    assert after == new
    return True


@functools.cache
def _append_statement(log: Table, heads: Table, size: int) -> Executable:
    """`_append`'s statement for `size` records, built once: all of it is bound parameters (the chain, its head
    before and after, and each record's columns as `r<i>_<column>`), so it is neither built nor compiled
    again for the next append. The records are a row source of `SELECT $1, $2, … UNION ALL SELECT …`, not
    `VALUES (…), (…)`: SQLAlchemy cannot cache a statement that holds its data."""
    head = (
        select(heads.c.id)
        .where(heads.c.id == bindparam("chain"))
        .where(heads.c.seq == bindparam("before_seq"), heads.c.hash == bindparam("before_hash"))
        .with_for_update(skip_locked=True)
        .cte("head")
    )
    moved = (
        update(heads)
        .where(heads.c.id == head.c.id)
        .values(seq=bindparam("after_seq"), hash=bindparam("after_hash"))
        .returning(heads.c.id)
        .cte("moved")
    )
    selects = [
        select(*[bindparam(f"r{i}_{c.name}", type_=c.type).label(c.name) for c in log.columns]) for i in range(size)
    ]
    rows = (selects[0] if size == 1 else union_all(*selects)).subquery("record")
    # A None is a bare NULL, which PostgreSQL takes for text: a nullable column says its type.
    typed = [cast(rows.c[c.name], c.type) if c.nullable else rows.c[c.name] for c in log.columns]
    appended = select(*typed).select_from(moved.join(rows, true()))
    return log.insert().from_select([c.name for c in log.columns], appended)


async def _lock_free_head(uow: UnitOfWork, chain: Table, avoid: set[int], single_writer: bool) -> Any:
    """Lock and read the lowest-numbered head no transaction holds, outside `avoid` (the chains this process's
    transactions are writing, and one that just proved stale); if every head is held, wait for chain 1.
    A new (or emptied) log gets its heads here; of two first writers one creates them."""
    heads = select(chain).order_by(chain.c.id).limit(1)
    if not single_writer:
        free = (
            await uow.session.execute(heads.where(chain.c.id.not_in(avoid)).with_for_update(skip_locked=True))
        ).first()
        if free is not None:
            return free
    head = (await uow.session.execute(heads.with_for_update())).first()
    if head is None:
        insert = pg_insert if uow.database.engine.dialect.name == "postgresql" else sqlite_insert
        await uow.session.execute(
            insert(chain).on_conflict_do_nothing(),
            [{"id": n, "seq": 0, "hash": GENESIS} for n in range(1, AUDIT_CHAINS + 1)],
        )
        head = (await uow.session.execute(heads.with_for_update())).one()
    return head


# --- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    org_id: str | None = None
    action: str | None = None
    patient_ref: str | None = None
    after: tuple[datetime, str] | None = None  # (at, id) of the last record seen
    limit: int = 100


async def list_records(uow: UnitOfWork, tables: AuditTables, query: AuditQuery) -> list[dict[str, Any]]:
    """Records matching `query`, oldest first (time, then id), at most `query.limit`."""
    log = tables.log
    statement = select(log).order_by(log.c.at, log.c.id).limit(query.limit)
    if query.since is not None:
        statement = statement.where(log.c.at >= query.since)
    if query.until is not None:
        statement = statement.where(log.c.at < query.until)
    for column, value in (
        (log.c.actor_org_id, query.org_id),
        (log.c.action, query.action),
        (log.c.patient_ref, query.patient_ref),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if query.after is not None:
        at, record_id = query.after
        statement = statement.where(or_(log.c.at > at, and_(log.c.at == at, log.c.id > record_id)))
    return [dict(row._mapping) for row in await uow.session.execute(statement)]


# --- verification ---------------------------------------------------------------------------------------


@dataclass
class ChainReport:
    service: str
    records: int = 0
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)  # chain -> (first seq, last seq) present
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


async def _rows_in_order(database: Database, log: Table, batch: int = 1000) -> AsyncIterator[Any]:
    """Every record, chain by chain, in `seq` order."""
    after = (0, 0)
    while True:
        async with database.unit_of_work() as uow:
            rows = list(
                await uow.session.execute(
                    select(log)
                    .where(or_(log.c.chain > after[0], and_(log.c.chain == after[0], log.c.seq > after[1])))
                    .order_by(log.c.chain, log.c.seq)
                    .limit(batch)
                )
            )
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = (rows[-1].chain, rows[-1].seq)


async def verify(database: Database, tables: AuditTables, service: str) -> ChainReport:
    """Walk every chain: consecutive `seq`, each record linked to the previous one, each hash recomputed,
    the BSN matching its keyed hash, and each head naming its chain's last record. Messages carry no
    personal data.

    A chain's oldest remaining record's `prev_hash` is taken as given: records past the retention go.
    """
    report = ChainReport(service)
    last: dict[int, tuple[int, str]] = {}  # chain -> (seq, hash) of its last record
    cipher = database.cipher
    async for row in _rows_in_order(database, tables.log):
        values = dict(row._mapping)
        report.records += 1
        where = f"record {row.seq} of chain {row.chain} ({row.id})"
        before = last.get(row.chain)
        if before is not None and row.seq != before[0] + 1:
            report.problems.append(
                f"records {before[0] + 1}..{row.seq - 1} of chain {row.chain} are missing before {where}"
            )
        if before is not None and row.prev_hash != before[1]:
            report.problems.append(f"{where} does not link to the record before it")
        if record_hash(values) != row.hash:
            report.problems.append(f"{where} was changed after it was written (its hash does not match)")
        if (row.patient_bsn is None) != (row.patient_ref is None) or (
            row.patient_bsn is not None and cipher.bsn_ref(row.patient_bsn) != row.patient_ref
        ):
            report.problems.append(f"{where} names another patient than its keyed hash")
        first = report.spans.get(row.chain, (row.seq, row.seq))[0]
        report.spans[row.chain] = (first, row.seq)
        last[row.chain] = (row.seq, row.hash)
    async with database.unit_of_work() as uow:
        heads = {head.id: head for head in await uow.session.execute(select(tables.chain))}
    for chain in sorted(set(last) - set(heads)):
        report.problems.append(f"the head of chain {chain} is missing")
    for chain, head in sorted(heads.items()):
        seq, hash_ = last.get(chain, (0, GENESIS))
        if (head.seq, head.hash) == (seq, hash_):
            continue
        if head.seq > seq:
            report.problems.append(f"the last {head.seq - seq} record(s) of chain {chain} are missing")
        else:
            report.problems.append(f"the head of chain {chain} does not name its last record")
    return report
