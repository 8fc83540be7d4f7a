"""Every service's migrations run up from empty and down again, and match the tables the code declares."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect

from shared import migrations
from shared.db import Database
from tests.support import SERVICES, RunEnvironment, create_database, drop_database


def service_metadata(service: str) -> MetaData:
    from services.consent.adapters.orm import metadata as consent
    from services.fhir.adapters.orm import metadata as fhir
    from services.melding.adapters.orm import metadata as melding
    from services.routing.adapters.orm import metadata as routing

    return {"consent": consent, "melding": melding, "routing": routing, "fhir": fhir}[service]


def backends(environment_backend: str) -> list[str]:
    # SQLite always; PostgreSQL whenever the run has it (CI does).
    return ["sqlite", "postgresql"] if environment_backend == "postgresql" else ["sqlite"]


async def table_names(url: str) -> set[str]:
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await database.dispose()


async def schema_differences(url: str, service: str) -> list[Any]:
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), service_metadata(service))
            )
    finally:
        await database.dispose()


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_run_up_from_empty_and_down_again(environment: RunEnvironment, service: str) -> None:
    for backend in backends(environment.backend):
        scratch = RunEnvironment(
            run_id=environment.run_id, backend=backend, data_dir=environment.data_dir, vhost=environment.vhost
        )
        url = await create_database(scratch, service, suffix="_migrations")
        try:
            await asyncio.to_thread(migrations.upgrade, service, url)
            tables = await table_names(url)
            assert set(service_metadata(service).tables) <= tables
            assert await schema_differences(url, service) == [], f"{backend}: migrations and models disagree"
            await asyncio.to_thread(migrations.downgrade, service, url)
            assert await table_names(url) <= {"alembic_version"}
            await asyncio.to_thread(migrations.upgrade, service, url)  # and up again after down
        finally:
            await drop_database(scratch, url)


async def test_a_v1_audit_log_with_records_upgrades_into_an_intact_chain(environment: RunEnvironment) -> None:
    """0002 chains the records 0001 wrote (frozen in shared/migration_steps.py): `kansrijk audit verify` finds
    them intact, in their order, with the BSN encrypted and its keyed hash set."""
    from datetime import UTC, datetime

    from sqlalchemy import bindparam, text

    from services.consent.adapters.orm import audit
    from shared.audit import verify
    from shared.db import UTCDateTime

    url = await create_database(environment, "consent", suffix="_v1_audit")
    try:
        await asyncio.to_thread(migrations.upgrade, "consent", url, "0001")
        database = Database(url)
        try:
            async with database.engine.begin() as connection:
                for n, bsn in enumerate(("999999990", None)):
                    await connection.execute(
                        text(
                            "INSERT INTO audit_log (id, at, service, actor_sub, actor_org_id, actor_org_type, action,"
                            " resource_type, resource_id, patient_bsn, outcome, request_id) VALUES (:id, :at,"
                            " 'consent', 'u', '10000001', 'huisarts', 'read', 'consent', NULL, :bsn, 'success', NULL)"
                        ).bindparams(bindparam("at", type_=UTCDateTime())),
                        {
                            "id": f"00000000-0000-0000-0000-00000000000{n}",
                            "at": datetime(2026, n + 1, 1, 10, tzinfo=UTC),
                            "bsn": bsn,
                        },
                    )
        finally:
            await database.dispose()
        await asyncio.to_thread(migrations.upgrade, "consent", url, cipher=environment.cipher)
        upgraded = Database(url, cipher=environment.cipher)
        try:
            report = await verify(upgraded, audit, "consent")
            async with upgraded.unit_of_work() as uow:
                rows = list(await uow.session.execute(audit.log.select().order_by(audit.log.c.seq)))
        finally:
            await upgraded.dispose()
        assert report.intact and report.records == 2 and report.spans == {1: (1, 2)}, report.problems
        assert [r.patient_bsn for r in rows] == ["999999990", None]
        assert rows[0].patient_ref == environment.cipher.bsn_ref("999999990")
    finally:
        await drop_database(environment, url)


async def test_meldingen_from_before_the_figures_get_their_skeleton_and_lose_their_patients_hash(
    environment: RunEnvironment,
) -> None:
    """0006 derives the skeleton of meldingen that still have their (encrypted) content, and drops the keyed
    hash of the BSN of those purged before."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from services.melding.domain.model import SenderRef
    from services.melding.service_layer.unit_of_work import unit_of_work_factory

    content = {
        "patient": {"bsn": "999999990"},
        "pregnancy": {"expected_due_date": "2027-05-01"},
        "risk_domains": ["lvb"],
        "recipient_types": ["jgz"],
        "urgency": "urgent",
        "note": "n",
    }
    url = await create_database(environment, "melding", suffix="_v11_figures")
    try:
        await asyncio.to_thread(migrations.upgrade, "melding", url, "0005", cipher=environment.cipher)
        database = Database(url, cipher=environment.cipher)
        try:
            async with unit_of_work_factory(database)() as uow:
                for melding_id in ("kept", "purged"):
                    await uow.meldingen.add(
                        melding_id=melding_id,
                        sender=SenderRef("10000001", "huisarts", "h"),
                        consent={"id": "c-1", "recipient_types": ["jgz"], "valid_until": "2027-12-31"},
                        content=content,
                        at=datetime(2026, 12, 1, tzinfo=UTC),
                    )
                await uow.meldingen.remove_personal_data("purged", datetime(2026, 12, 2, tzinfo=UTC))
                # As 0005 left them: no skeleton before the purge, the hash kept after it.
                await uow.session.execute(text("UPDATE meldingen SET skeleton = NULL WHERE content IS NOT NULL"))
                await uow.session.execute(text("UPDATE meldingen SET bsn_ref = 'old-ref' WHERE id = 'purged'"))
                await uow.commit()
        finally:
            await database.dispose()
        await asyncio.to_thread(migrations.upgrade, "melding", url, cipher=environment.cipher)
        database = Database(url, cipher=environment.cipher)
        try:
            async with unit_of_work_factory(database)() as uow:
                kept, purged = [await uow.meldingen.get(m) for m in ("kept", "purged")]
                refs: dict[str, str | None] = dict(
                    (await uow.session.execute(text("SELECT id, bsn_ref FROM meldingen"))).all()
                )
        finally:
            await database.dispose()
        skeleton = {k: content[k] for k in ("pregnancy", "risk_domains", "recipient_types", "urgency")}
        assert kept is not None and kept.skeleton == skeleton and kept.content == content
        assert purged is not None and purged.skeleton == skeleton and purged.content is None
        assert refs["purged"] is None and refs["kept"] == environment.cipher.bsn_ref("999999990")
    finally:
        await drop_database(environment, url)
