"""Routing's view of the consent feed on the run's real database: the heartbeat it applied, read again only once
the one it holds no longer says current (so a backlog of meldingen costs no read per melding)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.routing.adapters.orm import consent_feed
from services.routing.service_layer.unit_of_work import unit_of_work_factory
from shared.consent_feed import FeedClock
from shared.db import Database
from tests.support import counted_statements


async def test_the_feed_clock_reads_the_heartbeat_only_when_the_one_it_holds_is_too_old(
    rolled_back_routing: Database,
) -> None:
    clock = FeedClock(rolled_back_routing, consent_feed, max_lag=timedelta(seconds=2))
    assert not await clock.current()  # never heard
    async with unit_of_work_factory(rolled_back_routing)() as uow:
        await uow.routing.record_heartbeat(datetime.now(UTC) - timedelta(seconds=10))
        await uow.commit()
    assert not await clock.current()  # heard, too long ago
    async with unit_of_work_factory(rolled_back_routing)() as uow:
        await uow.routing.record_heartbeat(datetime.now(UTC))
        await uow.commit()
    assert await clock.current()
    with counted_statements(rolled_back_routing) as statements:
        assert all([await clock.current() for _ in range(100)])
    assert statements == []
    assert not await FeedClock(rolled_back_routing, consent_feed, max_lag=timedelta(0)).current()  # 0: always ask
