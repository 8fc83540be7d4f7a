"""The commands of CONTRACT.md "Running it", as a newcomer runs them: real processes, real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import RunEnvironment, _free_port

ROOT = Path(__file__).resolve().parents[2]


def cli_env(environment: RunEnvironment, **extra: str) -> dict[str, str]:
    return {**os.environ, **environment.env(), **extra}


async def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "services.cli", *args], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=120,
    )


async def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(base_url=base_url) as client:
        while asyncio.get_running_loop().time() < deadline:
            assert process.poll() is None, "the process died while starting"
            try:
                if (await client.get("/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    raise AssertionError(f"{base_url} never became ready")


async def test_kansrijk_up_then_token_then_curl_records_a_consent_and_sigterm_stops_everything(
    environment: RunEnvironment,
) -> None:
    port = _free_port()
    env = cli_env(environment, KANSRIJK_CONSENT_PORT=str(port))
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "up"], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await wait_ready(f"http://127.0.0.1:{port}", process)
        minted = await run_cli("token", "--org-id", "12345678", "--org-type", "verloskundige",
                               "--scope", "consent:write consent:read", env=env)
        assert minted.returncode == 0, minted.stderr
        token = minted.stdout.strip()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            headers = {"Authorization": f"Bearer {token}"}
            created = await client.post("/v1/consents", headers=headers, json={
                "patient": {"bsn": "999999990"}, "recipient_types": ["jgz", "wijkteam"], "method": "verbal",
                "given_at": "2026-11-20"})
            assert created.status_code == 201, created.text
            read = await client.get(created.headers["location"], headers=headers)
            assert read.json()["status"] == "active"
            docs = await client.get("/docs")
            assert docs.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)
    assert process.returncode == 0, output.decode()
    assert b"stopped" in output
    assert b"999999990" not in output  # no BSN in any log line
    # nothing is left listening
    async with httpx.AsyncClient() as client:
        try:
            await client.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
            raise AssertionError("a service is still running after SIGTERM")
        except httpx.ConnectError:
            pass


async def test_kansrijk_serve_runs_one_service_on_the_given_port(environment: RunEnvironment) -> None:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "consent", "--port", str(port)],
                               env=cli_env(environment), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await wait_ready(f"http://127.0.0.1:{port}", process)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)
    # uvicorn re-raises SIGTERM once its graceful shutdown is done; what matters is that it was graceful.
    assert process.returncode in (0, -signal.SIGTERM), output.decode()
    assert b'"service_stopped"' in output


async def test_kansrijk_token_refuses_unknown_scopes_and_org_types(environment: RunEnvironment) -> None:
    env = cli_env(environment)
    bad_scope = await run_cli("token", "--org-id", "1", "--org-type", "huisarts", "--scope", "everything", env=env)
    bad_type = await run_cli("token", "--org-id", "1", "--org-type", "apotheek", "--scope", "melding:read", env=env)
    assert bad_scope.returncode != 0 and "unknown scope" in bad_scope.stderr
    assert bad_type.returncode != 0 and "org_type" in bad_type.stderr


async def test_kansrijk_migrate_down_and_up(environment: RunEnvironment, tmp_path: Path) -> None:
    env = cli_env(environment, KANSRIJK_CONSENT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    assert (await run_cli("migrate", env=env)).returncode == 0
    down = await run_cli("migrate", "consent", "--down", env=env)
    assert down.returncode == 0, down.stderr
    assert (await run_cli("migrate", "consent", env=env)).returncode == 0
