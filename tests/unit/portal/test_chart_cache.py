"""The console's chart cache: a page's images share one drawing of its charts; a failure is not kept."""

from __future__ import annotations

import asyncio

import pytest

from services.portal.api.console import ChartCache


async def test_the_images_of_one_page_share_one_drawing_and_another_query_draws_its_own() -> None:
    cache, drawn = ChartCache(), []

    async def draw() -> dict[str, str]:
        drawn.append(1)
        await asyncio.sleep(0)
        return {"stand": "<svg/>"}

    answers = await asyncio.gather(*(cache.charts(("sub", "org", "van=1"), draw) for _ in range(6)))
    assert answers == [{"stand": "<svg/>"}] * 6 and len(drawn) == 1
    await cache.charts(("sub", "org", "van=2"), draw)
    await cache.charts(("other", "org", "van=1"), draw)  # another person: her own read, audited as hers
    assert len(drawn) == 3


async def test_a_failed_drawing_is_not_kept_and_an_old_one_is_drawn_again() -> None:
    cache, calls = ChartCache(), []

    async def fails() -> dict[str, str]:
        calls.append("fails")
        raise RuntimeError("melding service refused")

    async def draws() -> dict[str, str]:
        calls.append("draws")
        return {}

    with pytest.raises(RuntimeError):
        await cache.charts(("k",), fails)
    await cache.charts(("k",), draws)
    await cache.charts(("k",), draws)  # kept
    assert calls == ["fails", "draws"]
    old = ChartCache(seconds=0.0)
    await old.charts(("k",), draws)
    await old.charts(("k",), draws)  # kept for no time: drawn again
    assert calls == ["fails", "draws", "draws", "draws"]


async def test_only_the_latest_queries_are_kept() -> None:
    cache = ChartCache(size=2)

    async def draw() -> dict[str, str]:
        return {}

    for n in range(5):
        await cache.charts((str(n),), draw)
    assert len(cache._entries) == 2
