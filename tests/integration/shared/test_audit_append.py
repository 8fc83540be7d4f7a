"""The audit append: one statement on a chain head this process knows; a head another process moved is read
again (never followed twice: no fork), and a transaction that rolls back leaves the known head as it was."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from services.consent.adapters.orm import audit
from shared import audit as audit_module
from shared.audit import record_access, verify
from shared.auth import Principal
from shared.db import HOOK_NUMBERING, Database, UnitOfWork
from tests.support import RunEnvironment, counted_statements

WRITER = Principal(sub="test-user", org_id="12345678", org_type="verloskundige", scopes=frozenset())


def _stage(uow: UnitOfWork, n: int = 1) -> None:
    for _ in range(n):
        record_access(
            uow,
            audit,
            service="consent",
            principal=WRITER,
            action="read",
            resource_type="consent",
            resource_id="c-1",
            patient_bsn="999999990",
            request_id=None,
        )


async def _write(database: Database, n: int = 1) -> list[str]:
    """One audited transaction of `n` records; the statements its commit sent (the audit append's)."""
    async with database.unit_of_work() as uow:
        await uow.session.execute(select(func.count()).select_from(audit.log))  # the transaction has begun
        _stage(uow, n)
        with counted_statements(database) as seen:
            await uow.commit()
    return seen


async def _records(database: Database) -> list[tuple[int, int]]:
    async with database.unit_of_work() as uow:
        return [tuple(row) for row in await uow.session.execute(select(audit.log.c.chain, audit.log.c.seq))]


@pytest.fixture
async def another_process(environment: RunEnvironment, consent_db: Database) -> AsyncIterator[Database]:
    """The same database as another process opens it: its own pool, its own known heads."""
    database = environment.database(environment.database_urls["consent"])
    yield database
    await database.dispose()


async def test_an_append_on_a_known_head_is_one_statement(consent_db: Database) -> None:
    await _write(consent_db)  # a new log: its heads are created and chain 1's is learnt
    seen = await _write(consent_db, n=3)
    assert seen == (["UPDATE", "INSERT"] if consent_db.is_sqlite else ["WITH"])
    report = await verify(consent_db, audit, "consent")
    assert report.intact and report.spans == {1: (1, 4)}, report.problems


async def test_records_past_one_statements_share_go_in_several_on_one_chain(
    consent_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _write(consent_db)
    monkeypatch.setattr(audit_module, "APPEND_CHUNK", 2)
    seen = await _write(consent_db, n=5)
    assert seen == (["UPDATE", "INSERT"] if consent_db.is_sqlite else ["WITH", "WITH", "WITH"])
    report = await verify(consent_db, audit, "consent")
    assert report.intact and report.spans == {1: (1, 6)}, report.problems


async def test_a_rolled_back_transaction_leaves_the_known_head_as_it_was(consent_db: Database) -> None:
    await _write(consent_db)

    async def refuse(uow: UnitOfWork, key: str) -> None:  # runs after the audit append, as numbering does
        raise RuntimeError("refused after the audit append")

    with pytest.raises(RuntimeError, match="refused"):
        async with consent_db.unit_of_work() as uow:
            _stage(uow, 2)
            uow.before_commit("refuse", refuse, order=HOOK_NUMBERING)
            await uow.commit()
    # Had the rolled-back append advanced what this process knows, this one would miss and read the head.
    seen = await _write(consent_db)
    assert seen == (["UPDATE", "INSERT"] if consent_db.is_sqlite else ["WITH"])
    report = await verify(consent_db, audit, "consent")
    assert report.intact and report.records == 2 and report.spans == {1: (1, 2)}, report.problems


async def test_a_head_another_process_moved_is_read_again_and_never_followed_twice(
    consent_db: Database, another_process: Database
) -> None:
    await _write(consent_db)  # chain 1: record 1
    await _write(another_process)  # it knew no head: reads chain 1's (free) and writes record 2
    seen = await _write(consent_db)  # its head of chain 1 is stale: nothing written, a free head read, written
    if consent_db.is_sqlite:
        assert seen == ["UPDATE", "SELECT", "UPDATE", "INSERT"]
        expected = {1: (1, 3)}  # one writer at a time: chain 1 always
    else:
        assert seen == ["WITH", "SELECT", "WITH"]
        expected = {1: (1, 2), 2: (1, 1)}  # the stale chain is left to the process that moved it
    report = await verify(consent_db, audit, "consent")
    assert report.intact and report.records == 3 and report.spans == expected, report.problems


async def test_processes_writing_the_same_chains_at_once_never_fork_them(
    environment: RunEnvironment, consent_db: Database
) -> None:
    processes = [consent_db] + [environment.database(environment.database_urls["consent"]) for _ in range(2)]
    writers, transactions = (4, 12) if not consent_db.is_sqlite else (2, 6)
    sizes = random.Random(7)
    plan = [[[sizes.randint(1, 3) for _ in range(transactions)] for _ in range(writers)] for _ in processes]

    async def writer(database: Database, counts: list[int]) -> None:
        for n in counts:
            await _write(database, n)

    try:
        await asyncio.gather(
            *(writer(database, counts) for database, mine in zip(processes, plan, strict=True) for counts in mine)
        )
    finally:
        for database in processes[1:]:
            await database.dispose()
    written = sum(n for mine in plan for counts in mine for n in counts)
    records = await _records(consent_db)
    assert len(records) == len(set(records)) == written  # every record, none on a (chain, seq) twice
    report = await verify(consent_db, audit, "consent")  # consecutive seq, linked hashes, heads on the last
    assert report.intact, report.problems
    assert all(first == 1 for first, _ in report.spans.values())
    assert sum(last for _, last in report.spans.values()) == written
