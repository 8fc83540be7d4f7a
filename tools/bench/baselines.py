"""The raw infrastructure on this machine, measured in the same run as the system, so that the system's
figures are read as a share of what PostgreSQL, RabbitMQ and a bare FastAPI endpoint allow here.

- `B_pg`: one-row inserts with asyncpg, 16 concurrent, per second;
- `B_mq`: persistent 1 KB publishes with publisher confirms, 100 in flight, to a quorum queue, per second;
- `B_api`: a minimal FastAPI endpoint doing one asyncpg insert (served by uvicorn in its own process, as the
  services are), driven by the benchmark's load generator, requests per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import asyncpg
import httpx

from shared.messaging.topology import quorum_queue_arguments
from tools.bench.load import Samples, closed_loop, http_client

PG_CONCURRENCY = 16
MQ_IN_FLIGHT = 100
MESSAGE = b"x" * 1024
TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_rows (id bigserial PRIMARY KEY, payload text NOT NULL, "
    "created_at timestamptz NOT NULL DEFAULT now())"
)
INSERT = "INSERT INTO bench_rows (payload) VALUES ($1)"


async def postgres_inserts(dsn: str, *, duration: float) -> float:
    """`B_pg`: committed one-row inserts per second, 16 at a time."""
    async with asyncpg.create_pool(dsn, min_size=PG_CONCURRENCY, max_size=PG_CONCURRENCY) as pool:
        await pool.execute(TABLE)

        async def insert(_: int) -> bool:
            await pool.execute(INSERT, "baseline")
            return True

        samples = await closed_loop(insert, concurrency=PG_CONCURRENCY, duration=duration)
    return samples.per_second


async def rabbitmq_publishes(amqp_url: str, *, duration: float) -> float:
    """`B_mq`: confirmed persistent publishes per second to a quorum queue, 100 unconfirmed at most."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            "kansrijk.bench.baseline",
            durable=True,
            arguments={"x-queue-type": quorum_queue_arguments()["x-queue-type"]},
        )
        exchange = channel.default_exchange

        async def publish(_: int) -> bool:
            message = aio_pika.Message(MESSAGE, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await exchange.publish(message, routing_key=queue.name, timeout=30)
            return True

        samples = await closed_loop(publish, concurrency=MQ_IN_FLIGHT, duration=duration)
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
    return samples.per_second


async def api_requests(dsn: str, *, port: int, concurrency: int, duration: float) -> Samples:
    """`B_api`: the minimal endpoint under the same closed loop as the system's throughput phase."""
    async with _baseline_server(dsn, port) as base_url, http_client(base_url, concurrency) as client:

        async def post(_: int) -> bool:
            async with client.post("/rows", json={"payload": "baseline"}) as answered:
                await answered.read()
                return answered.status == 201

        await closed_loop(post, concurrency=concurrency, duration=min(2.0, duration))  # warm-up
        return await closed_loop(post, concurrency=concurrency, duration=duration)


@asynccontextmanager
async def _baseline_server(dsn: str, port: int) -> AsyncIterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.bench.baseline_server", "--dsn", dsn, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_answering(base_url, "/health", process)
        yield base_url
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()


async def wait_until_answering(base_url: str, path: str, process: subprocess.Popen[Any], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the process behind {base_url} exited with {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(path)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{base_url}{path} did not answer within {timeout:.0f}s")
