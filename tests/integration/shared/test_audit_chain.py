"""The audit log is append-only and hash-chained: the database refuses changes, and `verify` finds any
change made behind its back (by someone able to switch the triggers off)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from services.consent.adapters.orm import audit
from shared.audit import verify
from shared.clock import now
from shared.db import Database
from tests.support import Tokens

BSN = "999999990"
WRITE = "consent:write consent:read"


async def _accesses(client: httpx.AsyncClient, tokens: Tokens, n: int = 3) -> None:
    for _ in range(n):
        created = await client.post(
            "/v1/consents",
            headers=tokens.bearer(scopes=WRITE),
            json={"patient": {"bsn": BSN}, "recipient_types": ["jgz"], "method": "verbal", "given_at": "2026-11-20"},
        )
        assert created.status_code == 201, created.text
        assert (await client.get(created.headers["location"], headers=tokens.bearer(scopes=WRITE))).status_code == 200


@contextlib.asynccontextmanager
async def triggers_off(database: Database) -> AsyncIterator[None]:
    """What an attacker with the database owner's rights could do first."""
    async with database.engine.connect() as connection:
        if database.is_sqlite:
            triggers = list(
                await connection.execute(
                    text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'")
                )
            )
            for name, _ in triggers:
                await connection.execute(text(f'DROP TRIGGER "{name}"'))
        else:
            await connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        await connection.commit()
    try:
        yield
    finally:
        async with database.engine.connect() as connection:
            if database.is_sqlite:
                for _, sql in triggers:
                    await connection.execute(text(sql))
            else:
                await connection.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
            await connection.commit()


async def test_an_untouched_chain_verifies(
    consent_client: httpx.AsyncClient, consent_db: Database, tokens: Tokens
) -> None:
    await _accesses(consent_client, tokens)
    report = await verify(consent_db, audit, "consent")
    assert report.intact, report.problems
    # One request at a time: every record on chain 1, in order.
    assert report.records == 6 and report.spans == {1: (1, 6)}


@pytest.mark.parametrize("statement", ["update", "delete"])
async def test_the_database_refuses_to_change_or_delete_an_audit_record(
    consent_client: httpx.AsyncClient, consent_db: Database, tokens: Tokens, statement: str
) -> None:
    await _accesses(consent_client, tokens, n=1)
    with pytest.raises(DBAPIError, match="append-only"):
        async with consent_db.unit_of_work() as uow:
            if statement == "update":
                await uow.session.execute(update(audit.log).values(outcome="success"))
            else:
                await uow.session.execute(delete(audit.log))
            await uow.commit()
    async with consent_db.unit_of_work() as uow:
        assert (await uow.session.execute(select(func.count()).select_from(audit.log))).scalar_one() == 2


async def test_records_past_the_five_years_may_go_and_the_rest_still_verifies(
    consent_client: httpx.AsyncClient, consent_db: Database, tokens: Tokens
) -> None:
    await _accesses(consent_client, tokens)
    async with triggers_off(consent_db):  # (backdating is the test's doing, not something the code can do)
        async with consent_db.unit_of_work() as uow:
            await uow.session.execute(
                update(audit.log).where(audit.log.c.seq <= 2).values(at=now() - timedelta(days=6 * 365))
            )
            await uow.commit()
    async with consent_db.unit_of_work() as uow:  # the triggers are back: old records may go, no others
        removed = await uow.session.execute(delete(audit.log).where(audit.log.c.at < now() - timedelta(days=5 * 366)))
        await uow.commit()
    assert removed.rowcount == 2  # type: ignore[attr-defined]  # a DELETE's Result is a CursorResult
    report = await verify(consent_db, audit, "consent")
    # The backdated records are gone; their successors' link to them is taken as given, the rest verifies.
    assert report.records == 4 and report.spans == {1: (3, 6)} and report.intact, report.problems


@pytest.mark.parametrize(
    "tampering, finding",
    [
        ("edit", "was changed after it was written"),
        ("remove", "are missing before record"),
        ("remove-last", "record(s) of chain 1 are missing"),
        ("swap-patient", "names another patient"),
    ],
)
async def test_verify_finds_tampering_behind_the_triggers(
    consent_client: httpx.AsyncClient, consent_db: Database, tokens: Tokens, tampering: str, finding: str
) -> None:
    await _accesses(consent_client, tokens)
    await consent_client.post(
        "/v1/consents",
        headers=tokens.bearer(scopes=WRITE),
        json={
            "patient": {"bsn": "123456782"},
            "recipient_types": ["jgz"],
            "method": "verbal",
            "given_at": "2026-11-20",
        },
    )
    async with triggers_off(consent_db):
        async with consent_db.unit_of_work() as uow:
            log = audit.log
            if tampering == "edit":
                await uow.session.execute(update(log).where(log.c.seq == 3).values(actor_org_id="99999999"))
            elif tampering == "remove":
                await uow.session.execute(delete(log).where(log.c.seq == 3))
            elif tampering == "remove-last":
                await uow.session.execute(delete(log).where(log.c.seq == 7))
            else:  # another patient's (re-encrypted) BSN put in record 2
                await uow.session.execute(update(log).where(log.c.seq == 2).values(patient_bsn="123456782"))
            await uow.commit()
    report = await verify(consent_db, audit, "consent")
    assert not report.intact
    assert any(finding in problem for problem in report.problems), report.problems
    assert not any(BSN in problem or "123456782" in problem for problem in report.problems)


@pytest.mark.postgres_only  # SQLite has one writer at a time: there, every record is on chain 1
async def test_an_access_does_not_wait_for_another_transaction_holding_a_chain(
    consent_client: httpx.AsyncClient, consent_db: Database, tokens: Tokens
) -> None:
    await _accesses(consent_client, tokens, n=1)  # chain 1: records 1 and 2
    async with consent_db.engine.connect() as held:  # a slow transaction that holds chain 1's head
        await held.execute(select(audit.chain).where(audit.chain.c.id == 1).with_for_update())
        await asyncio.wait_for(_accesses(consent_client, tokens, n=1), timeout=10)
        await held.rollback()
    await _accesses(consent_client, tokens, n=1)  # chain 1 is free again, but this process stays on chain 2
    report = await verify(consent_db, audit, "consent")
    assert report.intact, report.problems
    # Chain 1 held by another: the append skipped it, forgot its head, locked chain 2 and goes on there (a
    # process that met another on a chain leaves it to that one).
    assert report.spans == {1: (1, 2), 2: (1, 4)}


async def test_the_audit_log_pages_through_every_record_once(consent_client: httpx.AsyncClient, tokens: Tokens) -> None:
    await _accesses(consent_client, tokens, n=3)  # 6 records
    auditor = tokens.bearer(org_id="ops", org_type="operator", scopes="audit:read")
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 4, "org_id": "12345678"}
    while True:
        page = (await consent_client.get("/v1/audit", headers=auditor, params=params)).json()
        seen += [record["id"] for record in page["items"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 6
