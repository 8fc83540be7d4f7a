"""The set-based statements every service runs per batch (shared.db) are ones SQLAlchemy caches: a batch
compiles nothing once one of more than one row has run, on SQLite and PostgreSQL alike, and each is still one
statement."""

from __future__ import annotations

from datetime import UTC, datetime

from services.melding.adapters.orm import consent_states, processed_messages
from shared.db import Database, insert_new, lock_rows_creating
from tests.support import compiled_again, counted_statements


def _processed(*message_ids: str) -> list[dict[str, object]]:
    at = datetime.now(UTC)
    return [{"consumer": "cache-test", "message_id": m, "processed_at": at} for m in message_ids]


async def test_insert_new_compiles_once_and_stays_one_statement(rolled_back_melding: Database) -> None:
    async with rolled_back_melding.unit_of_work() as uow:
        first = await insert_new(
            uow.session, processed_messages, _processed("a", "b"), returning=processed_messages.c.message_id
        )
        with compiled_again(rolled_back_melding) as compiled, counted_statements(rolled_back_melding) as sent:
            second = await insert_new(
                uow.session, processed_messages, _processed("b", "c", "d"), returning=processed_messages.c.message_id
            )
    assert (first, second) == ({"a", "b"}, {"c", "d"})  # the taken key is left out, as before
    assert compiled == [] and sent == ["INSERT"], (compiled, sent)


async def test_locking_rows_compiles_once_and_stays_one_statement(rolled_back_melding: Database) -> None:
    async with rolled_back_melding.unit_of_work() as uow:
        await lock_rows_creating(uow.session, consent_states, [{"consent_id": "c-1"}, {"consent_id": "c-0"}])
        with compiled_again(rolled_back_melding) as compiled, counted_statements(rolled_back_melding) as sent:
            rows = await lock_rows_creating(
                uow.session, consent_states, [{"consent_id": c} for c in ("c-3", "c-1", "c-2")]
            )
    assert sorted(row.consent_id for row in rows) == ["c-1", "c-2", "c-3"]
    assert compiled == [] and sent == ["INSERT"], (compiled, sent)
