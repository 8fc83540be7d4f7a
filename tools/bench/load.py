"""The one load generator every figure is measured with, baselines and system alike.

Closed loop: `concurrency` callers, each sending its next request as soon as the last one is answered
(what a saturated system sustains). Open loop: requests at a steady `rate` whatever the answers do, so a
slow answer cannot slow the offered load down and hide its own latency (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

Call = Callable[[int], Awaitable[bool]]  # request number -> answered as expected


@asynccontextmanager
async def http_client(base_url: str, concurrency: int) -> AsyncIterator[aiohttp.ClientSession]:
    """The generator's HTTP client: aiohttp keeps up with ~2,000 requests/s on one core here, where httpx's
    pool falls to ~300/s at 32 connections and would measure itself instead of the server."""
    # Idle connections are dropped before uvicorn drops them (after 5 s): reusing one the server has just
    # closed would count as the server's error.
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, keepalive_timeout=3)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@dataclass
class Samples:
    """What one load phase measured: per-request latency (ms) of the answered requests, and errors."""

    started: float = 0.0
    ended: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_types: dict[str, int] = field(default_factory=dict)  # exception type -> count, for the report

    @property
    def seconds(self) -> float:
        return max(self.ended - self.started, 1e-9)

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, p: float) -> float:
        return percentile(self.latencies_ms, p)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


async def _timed(call: Call, number: int, samples: Samples) -> None:
    begun = time.perf_counter()
    try:
        ok = await call(number)
    except Exception as exc:  # noqa: BLE001 - a failed request is an error of the system under load, counted
        samples.error_types[type(exc).__name__] = samples.error_types.get(type(exc).__name__, 0) + 1
        ok = False
    if ok:
        samples.latencies_ms.append((time.perf_counter() - begun) * 1000)
    else:
        samples.errors += 1


async def closed_loop(call: Call, *, concurrency: int, duration: float) -> Samples:
    """`concurrency` callers back to back for `duration` seconds."""
    samples = Samples(started=time.perf_counter())
    deadline = samples.started + duration
    counter = iter(range(1 << 62))

    async def caller() -> None:
        while time.perf_counter() < deadline:
            await _timed(call, next(counter), samples)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    samples.ended = time.perf_counter()
    return samples


async def open_loop(call: Call, *, rate: float, duration: float, answer_timeout: float = 60.0) -> Samples:
    """`rate` requests a second for `duration` seconds, each started on schedule."""
    samples = Samples(started=time.perf_counter())
    pending: set[asyncio.Task[None]] = set()
    for number in range(max(1, round(rate * duration))):
        delay = samples.started + number / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_timed(call, number, samples))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        _, late = await asyncio.wait(pending, timeout=answer_timeout)
        for task in late:
            task.cancel()
        samples.errors += len(late)
    samples.ended = time.perf_counter()
    return samples
