"""Request ids, health, metrics, and logs that carry no personal data."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from shared.observability import json_formatter
from tests.support import RunEnvironment, Tokens

BSN = "999999990"
NOTE_LIKE = "Cliënte trekt in wegens verhuizing"


async def test_request_id_is_taken_from_the_caller_or_made_and_always_returned(
    consent_client: httpx.AsyncClient,
) -> None:
    given = await consent_client.get("/health/live", headers={"X-Request-ID": "ehr-trace-42"})
    assert given.headers["x-request-id"] == "ehr-trace-42"
    made = await consent_client.get("/health/live")
    assert len(made.headers["x-request-id"]) == 32
    hostile = await consent_client.get("/health/live", headers={"X-Request-ID": "bad id\u0000" + "x" * 300})
    assert hostile.headers["x-request-id"] != "bad id"
    uuid_given = await consent_client.get(
        "/health/live", headers={"X-Request-ID": "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10"}
    )
    assert uuid_given.headers["x-request-id"] == "6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10"


@pytest.mark.parametrize("carrier", [BSN, "bsn-999999990", "0612345678", "19980314", "patient:12345"])
async def test_a_request_id_that_could_carry_a_bsn_phone_or_birth_date_is_replaced(
    consent_client: httpx.AsyncClient, carrier: str
) -> None:
    response = await consent_client.get("/health/live", headers={"X-Request-ID": carrier})
    assert response.headers["x-request-id"] != carrier
    assert len(response.headers["x-request-id"]) == 32


async def test_ready_reports_database_and_broker(consent_client: httpx.AsyncClient) -> None:
    response = await consent_client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"
    assert set(response.json()["checks"]) == {"database", "broker"}


async def test_ready_is_503_when_the_database_does_not_answer(consent_client: httpx.AsyncClient) -> None:
    app = consent_client.app  # type: ignore[attr-defined]
    real = app.state.database

    class Broken:
        async def ping(self) -> None:
            raise ConnectionRefusedError("database down")

    app.state.database = Broken()
    try:
        response = await consent_client.get("/health/ready")
    finally:
        app.state.database = real
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unavailable")


async def test_metrics_are_prometheus_text_labelled_by_route_template(
    consent_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    await consent_client.get(
        "/v1/consents/11111111-2222-3333-4444-555555555555", headers=tokens.bearer(scopes="consent:read")
    )
    response = await consent_client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'route="/v1/consents/{consent_id}"' in text
    assert "11111111-2222" not in text


@contextlib.contextmanager
def logged(level: int) -> Iterator[io.StringIO]:
    """What the process logs at `level` while the block runs, rendered as in production (JSON lines)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(json_formatter("consent"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


async def test_log_lines_are_json_with_the_request_id_and_no_personal_data(
    consent_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    """Everything the process logs at DEBUG — ours, the drivers', the broker client's — rendered as in production."""
    with logged(logging.DEBUG) as buffer:
        headers = {**tokens.bearer(scopes="consent:write consent:read"), "X-Request-ID": "trace-log-1"}
        created = await consent_client.post(
            "/v1/consents",
            headers=headers,
            json={"patient": {"bsn": BSN}, "recipient_types": ["jgz"], "method": "verbal", "given_at": "2026-11-01"},
        )
        await consent_client.post(
            f"/v1/consents/{created.json()['id']}/withdraw", headers=headers, json={"reason": NOTE_LIKE}
        )
        await consent_client.post("/v1/consents/_search", headers=headers, json={"bsn": BSN})
        await consent_client.post("/v1/consents", headers=headers, json={"patient": {"bsn": "999999991"}})
        await asyncio.sleep(0.5)  # let the relay publish the withdrawal, and log about it
    lines = buffer.getvalue().splitlines()
    assert len(lines) >= 4
    parsed = [json.loads(line) for line in lines]
    assert any(p.get("request_id") == "trace-log-1" and p.get("event") == "http_request" for p in parsed)
    for line in lines:
        assert BSN not in line and "999999991" not in line and NOTE_LIKE not in line


async def test_the_access_log_names_the_route_template_never_the_path_a_client_sent(
    consent_client: httpx.AsyncClient, tokens: Tokens
) -> None:
    with logged(logging.INFO) as buffer:
        headers = tokens.bearer(scopes="consent:read")
        await consent_client.get(f"/v1/consents/{BSN}", headers=headers)  # not an id: 404, still logged
        await consent_client.get(f"/v1/no-such-route/{BSN}", headers=headers)
        await consent_client.request("BREW", f"/v1/consents/{BSN}")
    access = [json.loads(line) for line in buffer.getvalue().splitlines() if '"http_request"' in line]
    assert [a["route"] for a in access] == ["/v1/consents/{consent_id}", "unmatched", "/v1/consents/{consent_id}"]
    assert all("path" not in a for a in access)
    assert BSN not in buffer.getvalue()
    metrics = (await consent_client.get("/metrics")).text
    assert BSN not in metrics and "BREW" not in metrics


async def test_an_outbox_message_the_broker_has_not_confirmed_shows_as_backlog_with_its_age(
    environment: RunEnvironment, consent_db: object, tokens: Tokens
) -> None:
    from services.consent.main import create_app
    from tests.conftest import consent_settings
    from tests.support import running

    # No relay at all (not even the API's hand-off): nothing leaves the outbox.
    app = create_app(consent_settings(environment, outbox_hand_off_in_api=False), run_workers=False)
    async with running(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as client:
        headers = tokens.bearer(scopes="consent:write consent:read")
        created = await client.post(
            "/v1/consents",
            headers=headers,
            json={"patient": {"bsn": BSN}, "recipient_types": ["jgz"], "method": "verbal", "given_at": "2026-11-01"},
        )
        await client.post(f"/v1/consents/{created.json()['id']}/withdraw", headers=headers)
        await asyncio.sleep(1.1)
        metrics = (await client.get("/metrics")).text
    backlog = [line for line in metrics.splitlines() if line.startswith("kansrijk_outbox_backlog{")]
    oldest = [line for line in metrics.splitlines() if line.startswith("kansrijk_outbox_oldest_unsent_seconds{")]
    # consent.recorded and consent.withdrawn
    assert backlog == ['kansrijk_outbox_backlog{service="consent"} 2.0']
    assert len(oldest) == 1 and float(oldest[0].rsplit(" ", 1)[1]) >= 1.0
