"""The edge of every service (shared.edge, issue 27.4): the token is checked before a body is read, a JSON body
nests at most 64 levels, a time at the calendar's edge is a 422, one organisation runs only a few expensive
requests at once (429), and a database pool with no free connection is a 503 - never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.registry import SERVICES
from shared.edge import MAX_JSON_DEPTH, json_depth
from tests.conftest import service_settings
from tests.e2e.flow import melding_body, recipient, sender
from tests.fhir_examples import FHIR_JSON, consent_example, melding_bundle
from tests.support import RunEnvironment, Tokens

Clients = dict[str, httpx.AsyncClient]

# The body found (851 bytes): nested 400 deep, where the parsers and validators recurse.
DEEP = ("[" * 420 + "]" * 420).encode()
DEEP_OBJECT = ('{"a":' * 420 + "1" + "}" * 420).encode()
NOT_JSON = b'{"patient": '
JSON = {"Content-Type": "application/json"}
FHIR = {"Content-Type": FHIR_JSON}

# A route of each service that reads a JSON body, and a token that may use it.
BODY_ROUTES = [
    ("consent", "POST", "/v1/consents", JSON, "consent:write"),
    ("melding", "POST", "/v1/meldingen", JSON, "melding:write"),
    ("melding", "POST", "/v1/audit/_search", JSON, "audit:read"),
    ("routing", "PUT", "/v1/gemeenten/GM0363", JSON, "routing:admin"),
    ("fhir", "POST", "/fhir", FHIR, "melding:write"),
    ("fhir", "POST", "/fhir/Consent", FHIR, "consent:write"),
    ("fhir", "POST", "/fhir/Subscription", FHIR, "melding:read"),
]


def _token(tokens: Tokens, scope: str, org_id: str = "10000001") -> dict[str, str]:
    org_type = {"routing:admin": "operator", "audit:read": "operator"}.get(scope, "verloskundige")
    return tokens.bearer(org_id=org_id, org_type=org_type, scopes=scope)


@contextlib.asynccontextmanager
async def _clients(environment: RunEnvironment, **overrides: object) -> AsyncIterator[Clients]:
    """Each service's API in process (no workers), on this run's databases."""
    clients: Clients = {}
    try:
        for name in ("consent", "melding", "routing", "fhir"):
            settings = service_settings(environment, name, environment.database_urls[name], **overrides)
            app = SERVICES[name].parts.create_app(settings, run_workers=False)
            transport = httpx.ASGITransport(app=app)
            clients[name] = httpx.AsyncClient(transport=transport, base_url=f"http://{name}")
            clients[name].app = app  # type: ignore[attr-defined]
        yield clients
    finally:
        for client in clients.values():
            await client.app.state.database.dispose()  # type: ignore[attr-defined]
            await client.aclose()


@pytest.fixture
async def services(environment: RunEnvironment) -> AsyncIterator[Clients]:
    async with _clients(environment) as clients:
        yield clients


def _status_of(response: httpx.Response) -> str:
    """The problem's type or, under /fhir, the OperationOutcome's issue code."""
    body = response.json()
    if body.get("resourceType") == "OperationOutcome":
        return str(body["issue"][0]["code"])
    return str(body["type"]).rsplit(":", 1)[-1]


@pytest.mark.parametrize(("service", "method", "path", "headers", "scope"), BODY_ROUTES)
async def test_without_a_token_a_body_is_not_read_at_all_401(
    services: Clients, service: str, method: str, path: str, headers: dict[str, str], scope: str
) -> None:
    read: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        read.append(1)  # the service asked for the body
        yield DEEP

    for credentials in ({}, {"Authorization": "Bearer not-a-jwt"}):
        response = await services[service].request(method, path, content=body(), headers={**headers, **credentials})
        assert response.status_code == 401, (service, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert read == [], f"{service} {path} read the body of an unauthenticated request"
    # not JSON at all: a parser that ran first would have answered 422 about the body
    response = await services[service].request(method, path, content=NOT_JSON, headers=headers)
    assert response.status_code == 401, (service, path, response.text)


@pytest.mark.parametrize(("service", "method", "path", "headers", "scope"), BODY_ROUTES)
async def test_a_body_nested_deeper_than_64_levels_is_422_never_a_recursion_error(
    services: Clients, tokens: Tokens, service: str, method: str, path: str, headers: dict[str, str], scope: str
) -> None:
    for deep in (DEEP, DEEP_OBJECT, b'{"resourceType": "Bundle", "entry": ' + DEEP + b"}"):
        response = await services[service].request(
            method, path, content=deep, headers={**headers, **_token(tokens, scope)}
        )
        assert response.status_code == 422, (service, path, response.text)
        assert _status_of(response) in ("validation", "invalid"), response.text
        assert f"deeper than {MAX_JSON_DEPTH} levels" in response.text


def test_json_depth_counts_nesting_not_brackets_in_strings() -> None:
    assert json_depth(b"{}") == 1
    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'{"a": "[[[[{{{{", "b": "\\"[[["}') == 1
    assert json_depth(b"17") == 0
    assert json_depth(DEEP) == 420
    assert json_depth(json.dumps(melding_bundle("6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10")).encode()) < 16


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1850-06-01T12:00:00Z"])
async def test_a_time_at_the_edge_of_the_calendar_is_422_in_a_fhir_bundle(
    services: Clients, tokens: Tokens, moment: str
) -> None:
    bundle = melding_bundle("6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10")
    [observation] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    observation["valueDateTime"] = moment
    content = json.dumps(bundle).encode()
    unauthenticated = await services["fhir"].post("/fhir", content=content, headers=FHIR)
    assert unauthenticated.status_code == 401, unauthenticated.text
    response = await services["fhir"].post("/fhir", content=content, headers={**FHIR, **sender(tokens)})
    assert response.status_code == 422, response.text
    [issue] = response.json()["issue"]
    assert issue["expression"] == ["Observation.valueDateTime"]
    assert moment not in response.text


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_time_at_the_edge_of_the_calendar_is_422_in_a_fhir_consent_and_task_search(
    services: Clients, tokens: Tokens, moment: str
) -> None:
    consent = consent_example()
    consent["dateTime"] = moment
    response = await services["fhir"].post(
        "/fhir/Consent", content=json.dumps(consent).encode(), headers={**FHIR, **sender(tokens)}
    )
    assert response.status_code == 422, response.text
    for comparator in ("ge", "lt"):
        searched = await services["fhir"].get(
            "/fhir/Task", params={"_lastUpdated": comparator + moment}, headers=sender(tokens)
        )
        assert searched.status_code == 400, searched.text  # the facade's answer to a search parameter it refuses


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1850-01-01"])
async def test_a_day_outside_the_supported_years_is_422_in_v1(services: Clients, tokens: Tokens, day: str) -> None:
    figures = await services["melding"].get(
        "/v1/figures",
        params={"from": day, "to": day},
        headers=tokens.bearer(org_id="ops", org_type="operator", scopes="figures:read"),
    )
    assert figures.status_code == 422, figures.text
    assert figures.json()["errors"][0]["field"] == "from"


# --- one organisation, a few expensive requests at once ----------------------------------------------------


def _hold(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> tuple[asyncio.Event, list[int]]:
    """Make `target.name` wait for the returned event before doing its work; count those inside."""
    release, inside = asyncio.Event(), [0]
    real: Callable[..., Awaitable[Any]] = getattr(target, name)

    async def held(*args: Any, **kwargs: Any) -> Any:
        inside[0] += 1
        await release.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(target, name, held)
    return release, inside


async def _until(condition: Callable[[], bool]) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout=60)  # a guard against a hang, not a timing assertion


@pytest.mark.parametrize("per_org", [2, 4])
async def test_one_organisation_runs_only_its_share_of_the_message_feed_at_once_429_and_others_are_unaffected(
    environment: RunEnvironment, tokens: Tokens, monkeypatch: pytest.MonkeyPatch, per_org: int
) -> None:
    from services.routing.service_layer import queries

    extra = 5
    async with _clients(environment, expensive_requests_per_org=per_org) as clients:
        release, inside = _hold(monkeypatch, queries, "recipient_messages")
        feed = clients["routing"]

        def fetch(org_id: str) -> asyncio.Task[httpx.Response]:
            return asyncio.create_task(
                feed.get("/v1/deliveries/messages", params={"limit": 500}, headers=recipient(tokens, org_id))
            )

        busy = [fetch("20000001") for _ in range(per_org + extra)]
        await _until(lambda: inside[0] == per_org and sum(t.done() for t in busy) == extra)
        other = fetch("20000002")  # another organisation is not held up by the busy one
        await _until(lambda: inside[0] == per_org + 1)
        release.set()
        answers = [await t for t in busy]
        refused = [r for r in answers if r.status_code == 429]
        assert len(refused) == extra, [r.status_code for r in answers]
        assert all(r.headers["retry-after"].isdigit() for r in refused)
        assert {_status_of(r) for r in refused} == {"too-many-requests"}
        assert [r.status_code for r in answers].count(200) == per_org
        assert (await other).status_code == 200
        # the slots are given back: the organisation is served again
        again = await feed.get("/v1/deliveries/messages", headers=recipient(tokens, "20000001"))
        assert again.status_code == 200, again.text


async def test_one_organisation_sends_only_its_share_of_fhir_bundles_at_once_429_as_an_outcome(
    environment: RunEnvironment, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _clients(environment, expensive_requests_per_org=3) as clients:
        facade = clients["fhir"]
        api = facade.app.state.melding_api  # type: ignore[attr-defined]
        release, inside = _hold(monkeypatch, api, "call")
        bundle = json.dumps(melding_bundle("6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10")).encode()

        def post(org_id: str) -> asyncio.Task[httpx.Response]:
            headers = {**FHIR, **sender(tokens, org_id)}
            return asyncio.create_task(facade.post("/fhir", content=bundle, headers=headers))

        busy = [post("10000001") for _ in range(3 + 4)]
        await _until(lambda: inside[0] == 3 and sum(t.done() for t in busy) == 4)
        other = post("10000002")
        await _until(lambda: inside[0] == 4)
        release.set()
        answers = [await t for t in busy]
        refused = [r for r in answers if r.status_code == 429]
        assert len(refused) == 4, [r.status_code for r in answers]
        assert all(r.headers["retry-after"].isdigit() for r in refused)
        assert {_status_of(r) for r in refused} == {"throttled"}
        assert (await other).status_code != 429


# --- a pool with no free connection ------------------------------------------------------------------------


async def test_a_database_pool_with_no_free_connection_is_503_with_retry_after(
    environment: RunEnvironment, tokens: Tokens
) -> None:
    if environment.database(environment.database_urls["melding"]).is_sqlite:
        pytest.skip("SQLite has no connection pool to exhaust: run with KANSRIJK_TEST_DATABASE=postgresql")
    small = {"database_pool_size": 1, "database_max_overflow": 0, "database_pool_timeout_seconds": 0.2}
    # an organisation of its own: the run's melding database also holds other tests' hand-made records
    headers = sender(tokens, org_id="30000005")
    async with _clients(environment, **small) as clients:
        melding = clients["melding"]
        database = melding.app.state.database  # type: ignore[attr-defined]
        async with database.engine.connect() as held:  # the pool's only connection, taken
            await held.execute(text("SELECT 1"))
            responses = await asyncio.gather(
                *(melding.get("/v1/meldingen", params={"limit": 100}, headers=headers) for _ in range(5))
            )
        assert [r.status_code for r in responses] == [503] * 5, [r.text for r in responses]
        assert all(r.headers["retry-after"].isdigit() for r in responses)
        assert {_status_of(r) for r in responses} == {"unavailable"}
        served = await melding.get("/v1/meldingen", params={"limit": 100}, headers=headers)
        assert served.status_code == 200, served.text


async def test_the_fhir_facade_takes_a_body_the_size_of_a_real_bundle_not_a_megabyte(
    services: Clients, tokens: Tokens
) -> None:
    bundle = melding_bundle("6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10")
    bundle["padding"] = "x" * 100_000  # the 634 KB Bundles found cost the facade seconds of CPU each
    response = await services["fhir"].post(
        "/fhir", content=json.dumps(bundle).encode(), headers={**FHIR, **sender(tokens)}
    )
    assert response.status_code == 413, response.text
    assert response.json()["issue"][0]["code"] == "too-long"
    limit = services["fhir"].app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    assert 10 * len(json.dumps(melding_bundle("6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10"))) < limit <= 65_536


@pytest.mark.parametrize(
    ("service", "path", "body"),
    [
        ("consent", "/v1/consents", {"given_at": "2026-11-01", "valid_until": "9999-12-31"}),
        ("consent", "/v1/consents", {"given_at": "1850-01-01"}),
        ("melding", "/v1/meldingen", {"patient": {"birth_date": "0001-01-01"}}),
    ],
)
async def test_a_day_outside_the_supported_years_is_422_in_a_v1_body(
    services: Clients, tokens: Tokens, service: str, path: str, body: dict[str, Any]
) -> None:
    if service == "consent":
        sent = {"patient": {"bsn": "999999990"}, "recipient_types": ["jgz"], "method": "verbal", **body}
        headers = _token(tokens, "consent:write")
    else:
        sent = melding_body("6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10", recipient_types=["jgz"])
        sent["patient"]["birth_date"] = body["patient"]["birth_date"]
        headers = _token(tokens, "melding:write")
    response = await services[service].post(path, json=sent, headers=headers)
    assert response.status_code == 422, response.text
    assert "supported years" in response.text
