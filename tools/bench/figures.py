"""The programme figures on a year of national volume: `--figures-meldingen` meldingen (50,000 by default,
the order of a year's at-risk pregnancies the programme could see) spread over the CBS gemeenten and a year,
with deliveries, contacts and outcomes, in a melding database of the benchmark's own; then `GET /v1/figures`'s
use case timed for the country and for one gemeente, per month over the year."""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text

from services.melding.adapters.orm import melding_deliveries, meldingen
from services.melding.domain.figures import Interval
from services.melding.service_layer.figures import programme_figures
from services.melding.service_layer.unit_of_work import unit_of_work_factory
from shared.auth import Principal
from shared.contracts.vocabulary import MEDICAL_RISK_DOMAINS, SENDER_TYPES, SOCIAL_RISK_DOMAINS
from shared.crypto import FieldCipher
from shared.db import Database

YEAR = 2027
REPEATS = 5
GEMEENTEN = [f"GM{n:04d}" for n in range(1, 343)]  # as many as CBS has; GM0001 gets the most
BATCH = 5000
READER = Principal(sub="bench", org_id="kansrijk-bench", org_type="operator", scopes=frozenset({"figures:read"}))


@dataclass(frozen=True)
class FiguresTiming:
    meldingen: int
    country_ms: float  # the first question, the whole country per month over the year: it protects the year
    country_again_ms: float  # median of the REPEATS after it: the year's protected table is kept (YearTables)
    gemeente_ms: float  # median of REPEATS for the largest gemeente (the year already protected)
    load_s: float  # how long writing the meldingen took (not a target)


def _rows(count: int, rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    domains = (*MEDICAL_RISK_DOMAINS, *SOCIAL_RISK_DOMAINS)
    weights = [1 / (rank + 1) for rank in range(len(GEMEENTEN))]  # a few large gemeenten, many small
    melding_rows, delivery_rows = [], []
    for _ in range(count):
        melding_id = str(uuid.uuid4())
        created = datetime(YEAR, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(365 * 86400))
        status = rng.choices(["delivered", "withdrawn", "cancelled", "unroutable"], weights=[90, 4, 3, 3])[0]
        types = ["jgz", "wijkteam"] if rng.random() < 0.4 else ["jgz"]
        skeleton = {
            "pregnancy": {"expected_due_date": str((created + timedelta(days=180)).date())},
            "risk_domains": rng.sample(domains, rng.randint(1, 3)),
            "recipient_types": types,
            "urgency": "regular",
        }
        melding_rows.append(
            {
                "id": melding_id,
                "status": status,
                "sender_org_id": f"{rng.randrange(10**7, 10**8)}",
                "sender_org_type": rng.choice(SENDER_TYPES),
                "sender_sub": "bench",
                "consent_id": str(uuid.uuid4()),
                "consent": "{}",
                "content": None,
                "skeleton": json.dumps(skeleton),
                "gemeente_code": rng.choices(GEMEENTEN, weights=weights)[0] if status != "unroutable" else None,
                "gemeente_name": "Gemeente",
                "unroutable_types": "",
                "routing_reported_unroutable": 0,
                "created_at": created,
                "updated_at": created,
            }
        )
        if status == "unroutable":
            continue
        for recipient_type in types:
            contact = created.date() + timedelta(days=rng.randrange(21)) if rng.random() < 0.8 else None
            delivery_rows.append(
                {
                    "delivery_id": str(uuid.uuid4()),
                    "melding_id": melding_id,
                    "org_id": "12345678",
                    "org_name": "JGZ",
                    "recipient_type": recipient_type,
                    "status": "closed" if contact else "received",
                    "updated_at": created,
                    "risk_domains": "",
                    "contact_due_at": created + timedelta(days=14),
                    "contact_at": contact,
                    "outcome": rng.choice(["phb-done", "support-started", "declined"]) if contact else None,
                }
            )
    return melding_rows, delivery_rows


async def measure_figures(database_url: str, count: int, cipher: FieldCipher, seed: int = 2027) -> FiguresTiming:
    """Write `count` meldingen into the (migrated, empty) melding database at `database_url`, then time the
    figures (each request audited, as the service does: hence the key ring). The database is the caller's."""
    database = Database(database_url, cipher=cipher)
    try:
        started = time.perf_counter()
        melding_rows, delivery_rows = _rows(count, random.Random(seed))
        async with database.engine.begin() as connection:
            for table, rows in ((meldingen, melding_rows), (melding_deliveries, delivery_rows)):
                for at in range(0, len(rows), BATCH):
                    await connection.execute(table.insert(), rows[at : at + BATCH])
        async with database.engine.connect() as connection:  # as autovacuum would have, on a year's data
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("ANALYZE meldingen, melding_deliveries"))
        load_s = time.perf_counter() - started

        async def timed(gemeente: str | None) -> list[float]:
            spent = []
            for _ in range(REPEATS):
                started = time.perf_counter()
                await programme_figures(
                    unit_of_work_factory(database),
                    principal=READER,
                    gemeente_code=gemeente,
                    first=date(YEAR, 1, 1),
                    last=date(YEAR, 12, 31),
                    interval=Interval.month,
                    request_id=None,
                )
                spent.append(1000 * (time.perf_counter() - started))
            return spent

        first, *again = await timed(None)
        return FiguresTiming(
            meldingen=count,
            country_ms=first,
            country_again_ms=statistics.median(again),
            gemeente_ms=statistics.median(await timed(GEMEENTEN[0])),
            load_s=load_s,
        )
    finally:
        await database.dispose()
