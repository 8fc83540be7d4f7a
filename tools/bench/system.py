"""The system under the benchmark: consent, melding and routing as `kansrijk up` runs them (one process
each, migrated first, relays and consumers inside), on PostgreSQL databases and a RabbitMQ vhost of the
benchmark's own; a directory and consents set up first; a recipient reading its queue.

Every melding is a valid one under a real consent, so the whole path is measured: validation, consent
check, melding + outbox + audit, relay, routing with its consent re-check, delivery + outbox, relay, the
recipient's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import httpx

from services.registry import SERVICES
from shared.auth import development_token
from shared.clock import today_nl
from shared.contracts.subscriptions import SUBSCRIPTIONS
from shared.identifiers import sample_bsns
from tools.bench.baselines import wait_until_answering
from tools.bench.load import Samples

SENDER = "10000001"
JGZ = "90000001"
POSTCODE = "1011AB"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningSystem:
    processes: dict[str, subprocess.Popen[bytes]]
    urls: dict[str, str]
    env: dict[str, str]

    def peak_memory_mb(self) -> dict[str, float]:
        """Each service's peak resident set size so far (VmHWM), in MB."""
        return {name: _vm_hwm_kb(process.pid) / 1024 for name, process in self.processes.items()}

    def cpu_seconds(self) -> dict[str, float]:
        """Each service's CPU time so far (user + system)."""
        return {name: cpu_seconds(process.pid) for name, process in self.processes.items()}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _vm_hwm_kb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


@contextlib.asynccontextmanager
async def running_system(
    *, database_urls: dict[str, str], amqp_url: str, data_dir: Path, log_dir: Path
) -> AsyncIterator[RunningSystem]:
    """Start the three services as separate processes, wait until each is ready; SIGTERM them on exit."""
    ports = {name: free_port() for name in SERVICES}
    env = {
        **os.environ,
        "KANSRIJK_DATA_DIR": str(data_dir),
        "KANSRIJK_AMQP_URL": amqp_url,
        **{f"KANSRIJK_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **{f"KANSRIJK_{name.upper()}_DATABASE_URL": url for name, url in database_urls.items()},
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        for name in SERVICES:
            log = (log_dir / f"{name}.log").open("wb")
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve", name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for name, url in urls.items():
            await wait_until_answering(url, "/health/ready", processes[name])
        yield RunningSystem(processes, urls, env)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()


@dataclass
class Fixture:
    """The directory, the consents and the tokens every melding of the benchmark is sent with."""

    sender_headers: dict[str, str]
    consents: list[tuple[str, str]]  # (bsn, consent id)


def _tokens(data_dir: Path) -> dict[str, dict[str, str]]:
    from services.consent.config import ConsentSettings

    settings = ConsentSettings(data_dir=data_dir)

    def bearer(org_id: str, org_type: str, scopes: str) -> dict[str, str]:
        token = development_token(
            settings,
            org_id=org_id,
            org_type=org_type,
            scopes=scopes,
            sub="kansrijk-bench",
            ttl_seconds=4 * 3600,
        )
        return {"Authorization": f"Bearer {token}"}

    return {
        "sender": bearer(SENDER, "verloskundige", "consent:write consent:read melding:write melding:read"),
        "operator": bearer("ops", "operator", "routing:admin"),
        "recipient": bearer(JGZ, "jgz", "delivery:read delivery:write"),
    }


async def set_up(system: RunningSystem, data_dir: Path, *, patients: int) -> Fixture:
    """The directory, and `patients` patients with a consent each: every melding is for a patient of its own."""
    tokens = _tokens(data_dir)
    async with httpx.AsyncClient(timeout=30) as client:
        routing = system.urls["routing"]
        answered = await client.put(
            f"{routing}/v1/gemeenten/GM0363",
            headers=tokens["operator"],
            json={"name": "Amsterdam", "postcode_ranges": [{"from": "1011", "to": "1109"}]},
        )
        answered.raise_for_status()
        answered = await client.put(
            f"{routing}/v1/organisations/{JGZ}",
            headers=tokens["operator"],
            json={"name": "JGZ (benchmark)", "type": "jgz", "gemeenten": ["GM0363"], "active": True},
        )
        answered.raise_for_status()
        given_at = (today_nl() - timedelta(days=1)).isoformat()
        semaphore = asyncio.Semaphore(16)

        async def consent(bsn: str) -> tuple[str, str]:
            async with semaphore:
                answered = await client.post(
                    f"{system.urls['consent']}/v1/consents",
                    headers=tokens["sender"],
                    json={
                        "patient": {"bsn": bsn},
                        "recipient_types": ["jgz"],
                        "method": "written",
                        "given_at": given_at,
                    },
                )
                answered.raise_for_status()
                return bsn, answered.json()["id"]

        consents = await asyncio.gather(*(consent(bsn) for bsn in sample_bsns(patients, seed=2026)))
        await _announced(client, system.urls["consent"])
    return Fixture(tokens["sender"], list(consents))


async def _announced(client: httpx.AsyncClient, consent_url: str, timeout: float = 120.0) -> None:
    """Until the consent service has published every consent it recorded (`consent.recorded`, its outbox empty).
    The benchmark records its thousands of consents in a burst a few seconds before the first melding, which no
    EHR does (a consent is given well before her melding): the phases must not measure that burst's tail, the
    melding service asking the consent service about consents its own record has not heard of yet."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        metrics = (await client.get(f"{consent_url}/metrics")).text
        backlog = [line for line in metrics.splitlines() if line.startswith("kansrijk_outbox_backlog{")]
        if all(float(line.rsplit(" ", 1)[1]) == 0 for line in backlog):  # (none: nothing to wait for)
            return
        await asyncio.sleep(0.2)


class OutOfPatients(RuntimeError):
    """The phases sent more meldingen than the fixture has patients: a repeat would be the system's 409, so the
    benchmark counts this error of its own instead (size the fixture to the machine: `PATIENTS_PER_SECOND`)."""


def melding_body(fixture: Fixture, number: int) -> dict[str, Any]:
    if number >= len(fixture.consents):
        raise OutOfPatients(f"melding {number}: the fixture has {len(fixture.consents)} patients")
    bsn, consent_id = fixture.consents[number]
    return {
        "consent_id": consent_id,
        "patient": {
            "bsn": bsn,
            "name": {"given": "Bench", "family": f"Patient {number}"},
            "birth_date": "1996-05-01",
            "address": {"postcode": POSTCODE, "house_number": str(1 + number % 200), "city": "Amsterdam"},
        },
        "pregnancy": {"expected_due_date": (today_nl() + timedelta(days=150)).isoformat()},
        "risk_domains": ["financien-schulden", "huisvesting"],
        "recipient_types": ["jgz"],
        "urgency": "regular",
        "note": "Benchmark melding: schulden en woonsituatie, graag prenataal huisbezoek.",
        "contact": {"name": "Benchmark verloskundige", "phone": "0201234567"},
    }


@dataclass
class Recipient:
    """The JGZ's consumer: the moment each melding's delivery is taken from its queue."""

    amqp_url: str
    delivered_at: dict[str, float] = field(default_factory=dict)
    _connection: Any = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.get_queue(f"kansrijk.deliveries.{JGZ}", ensure=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if message.type == "melding.delivered" and message.correlation_id:
                self.delivered_at.setdefault(message.correlation_id, time.perf_counter())
            await message.ack()

        await queue.consume(on_message)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def wait_until_quiet(self, timeout: float, settle: float = 1.0) -> None:
        """Until the services' own event queues are empty (the backlog of a phase must not slow the next)."""
        channel = await self._connection.channel()
        try:
            deadline = time.perf_counter() + timeout
            while time.perf_counter() < deadline:
                waiting = 0
                for name in (q.name for q in SUBSCRIPTIONS):
                    queue = await channel.declare_queue(name, passive=True)
                    waiting += queue.declaration_result.message_count or 0
                if waiting == 0:
                    break
                await asyncio.sleep(0.2)
        finally:
            await channel.close()
        await asyncio.sleep(settle)  # what was taken but not yet acked

    async def wait_for(self, melding_ids: list[str], timeout: float) -> int:
        """Wait until every one of `melding_ids` is delivered (or `timeout`); how many were."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if all(i in self.delivered_at for i in melding_ids):
                break
            await asyncio.sleep(0.05)
        return sum(1 for i in melding_ids if i in self.delivered_at)


@dataclass
class Sender:
    """The EHR: posts meldingen and notes when each was sent and its id."""

    client: aiohttp.ClientSession
    fixture: Fixture
    sent_at: dict[str, float] = field(default_factory=dict)
    unexpected: dict[int, int] = field(default_factory=dict)
    patients_used: int = 0

    async def send(self, _call: int) -> bool:
        # A patient of its own for every melding of the whole run (the phases number their calls from 0 each):
        # a repeat for a patient with an open melding would be 409.
        number, self.patients_used = self.patients_used, self.patients_used + 1
        begun = time.perf_counter()
        async with self.client.post(
            "/v1/meldingen", headers=self.fixture.sender_headers, json=melding_body(self.fixture, number)
        ) as answered:
            body = await answered.json(content_type=None)
        if answered.status != 202:
            self.unexpected[answered.status] = self.unexpected.get(answered.status, 0) + 1
            return False
        self.sent_at[body["id"]] = begun
        return True

    def take(self) -> dict[str, float]:
        """The meldingen sent since the last take."""
        sent, self.sent_at = self.sent_at, {}
        return sent


def end_to_end(sent: dict[str, float], recipient: Recipient) -> Samples:
    """Per melding: from the start of the EHR's POST to the delivery taken from the JGZ's queue."""
    samples = Samples(started=min(sent.values(), default=0.0))
    for melding_id, begun in sent.items():
        delivered = recipient.delivered_at.get(melding_id)
        if delivered is None:
            samples.errors += 1
        else:
            samples.latencies_ms.append((delivered - begun) * 1000)
            samples.ended = max(samples.ended, delivered)
    return samples
