"""HTTP limits every service keeps (shared.server): bodies over 1 MB, slow clients, methods a route lacks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from services.consent.main import create_app
from shared.server import Server, server_config
from tests.conftest import consent_settings
from tests.support import RunEnvironment, Tokens, _free_port

WRITE = "consent:write consent:read"
ONE_MB = 1_048_576


def _consent_body(padding: int) -> bytes:
    return json.dumps(
        {
            "patient": {"bsn": "999999990"},
            "recipient_types": ["jgz"],
            "method": "verbal",
            "given_at": "2026-11-01",
            "pad": "x" * padding,
        }
    ).encode()


async def test_a_body_over_one_megabyte_is_413_before_it_is_read_and_nothing_is_stored(
    consent_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    headers = {**tokens.bearer(scopes=WRITE), "Content-Type": "application/json"}
    declared = await consent_client.post("/v1/consents", content=_consent_body(ONE_MB), headers=headers)
    assert declared.status_code == 413, declared.text
    assert declared.headers["content-type"] == "application/problem+json"
    assert declared.json()["type"] == "urn:kansrijk:problem:payload-too-large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        body = _consent_body(ONE_MB)
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    streamed = await consent_client.post("/v1/consents", content=chunks(), headers=headers)
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["type"] == "urn:kansrijk:problem:payload-too-large"
    found = await consent_client.post(
        "/v1/consents/_search", json={"bsn": "999999990"}, headers=tokens.bearer(scopes=WRITE)
    )
    assert found.json()["items"] == []
    # just under the limit is read and judged on its content (an unknown field: 422)
    under = await consent_client.post("/v1/consents", content=_consent_body(ONE_MB - 200), headers=headers)
    assert under.status_code == 422


async def test_a_method_the_route_does_not_have_is_405_naming_the_allowed_ones(
    consent_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    response = await consent_client.delete("/v1/consents/_search", headers=tokens.bearer(scopes=WRITE))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["type"] == "urn:kansrijk:problem:method-not-allowed"


@contextlib.asynccontextmanager
async def _served(environment: RunEnvironment, **limits: object) -> AsyncIterator[int]:
    port = _free_port()
    settings = consent_settings(environment, port=port, **limits)
    server = Server(server_config(create_app(settings, run_workers=False), settings))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), timeout=within) == b""
    except (TimeoutError, ConnectionResetError):
        return False


@pytest.mark.parametrize("sent", [b"", b"GET /health/live HTTP/1.1\r\nHost: x\r\n"])
async def test_a_client_too_slow_to_send_its_request_is_disconnected(environment: RunEnvironment, sent: bytes) -> None:
    async with _served(environment, http_request_timeout_seconds=1.0) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(sent)  # nothing, or a head that never ends (slowloris)
        await writer.drain()
        assert await _closed_by_server(reader, within=5)
        writer.close()
        # a client that sends its request in time is answered as usual, also after the deadline passed
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            first = await client.get("/health/live")
            await asyncio.sleep(1.5)
            second = await client.get("/health/live")
        assert first.status_code == second.status_code == 200


def test_the_server_configuration_carries_the_limits(environment: RunEnvironment) -> None:
    settings = consent_settings(
        environment, http_max_connections=250, http_keep_alive_seconds=7, http_request_timeout_seconds=12.5
    )
    config = server_config(object(), settings)
    assert (config.limit_concurrency, config.timeout_keep_alive) == (250, 7)
    assert config.http.request_timeout == 12.5  # type: ignore[union-attr]


async def test_a_server_told_to_stop_stops_without_waiting_for_its_tick(environment: RunEnvironment) -> None:
    """The server wakes once a second when idle (uvicorn: ten times); being told to stop wakes it at once. With
    a tick of an hour, only that wake can end this test."""
    port = _free_port()
    settings = consent_settings(environment, port=port)
    server = Server(server_config(create_app(settings, run_workers=False), settings))
    server.tick_seconds = 3600
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        answer = await client.get("/health/live")
    assert answer.status_code == 200 and answer.headers["date"].endswith("GMT")  # the tick set the Date header
    server.should_exit = True
    await asyncio.wait_for(task, timeout=60)
    assert task.done() and task.exception() is None
