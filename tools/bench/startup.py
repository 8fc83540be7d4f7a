"""Start-up and idle: `kansrijk up` as a newcomer runs it (SQLite, databases migrated before), timed from the
command to every service answering `/health/ready`; then each service's CPU while nothing happens."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.registry import SERVICES
from tools.bench.system import cpu_seconds, free_port

SETTLE_SECONDS = 2.0  # after ready, before idle is measured: the first relay sweeps and consumer set-up


@dataclass(frozen=True)
class StartUp:
    seconds: float  # `kansrijk up` to every service ready
    idle_cpu_percent: dict[str, float]  # per service, of one core, over `idle_seconds`
    idle_seconds: float


def _environment(amqp_url: str, data_dir: Path) -> dict[str, str]:
    # The newcomer's default: SQLite files under the data dir (whatever database this shell points at).
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("KANSRIJK_")}
    return {
        **inherited,
        "KANSRIJK_DATA_DIR": str(data_dir),
        "KANSRIJK_AMQP_URL": amqp_url,
        **{f"KANSRIJK_{name.upper()}_PORT": str(free_port()) for name in SERVICES},
    }


def _children(parent: int) -> dict[str, int]:
    """The service processes `kansrijk up` started: name -> pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"serve" in argv:
            found[argv[argv.index(b"serve") + 1].decode()] = int(entry.name)
    return found


async def _ready(urls: list[str], process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    pending = set(urls)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1.0) as client:
        while pending:
            if process.poll() is not None:
                raise RuntimeError(f"kansrijk up exited with {process.returncode} while starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready within {timeout:.0f} s: {sorted(pending)}")
            for url in list(pending):
                try:
                    if (await client.get(f"{url}/health/ready")).status_code == 200:
                        pending.discard(url)
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.02)


async def measure_start_up(amqp_url: str, work_dir: Path, idle_seconds: float = 10.0) -> StartUp:
    """Migrate a fresh data dir, then time `kansrijk up` to ready and measure its services' idle CPU."""
    env = _environment(amqp_url, work_dir / "start-up")
    command = [sys.executable, "-m", "services.cli"]
    await asyncio.to_thread(subprocess.run, [*command, "migrate"], env=env, check=True, capture_output=True)
    urls = [f"http://127.0.0.1:{env[f'KANSRIJK_{name.upper()}_PORT']}" for name in SERVICES]
    log = (work_dir / "start-up.log").open("wb")
    started = time.perf_counter()
    up = subprocess.Popen([*command, "up"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        await _ready(urls, up)
        seconds = time.perf_counter() - started
        await asyncio.sleep(SETTLE_SECONDS)
        services = _children(up.pid)
        before = {name: cpu_seconds(pid) for name, pid in services.items()}
        await asyncio.sleep(idle_seconds)
        idle = {name: 100 * (cpu_seconds(pid) - before[name]) / idle_seconds for name, pid in services.items()}
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(up.wait, 60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
        log.close()
    return StartUp(seconds=seconds, idle_cpu_percent=idle, idle_seconds=idle_seconds)
