"""No span carries the path or query a client sent (issue 27.6): `/fhir/Patient/<BSN>` put a BSN in
`http.target` and `http.url`. Every route of every service is called with personal data in each path
parameter and in the query, and so are paths no route matches; no span name, attribute or event holds any."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.registry import SERVICES
from tests.conftest import service_settings
from tests.support import RunEnvironment, Tokens

BSN, POSTCODE, NAME = "999999990", "1011AB", "Jansen"
PERSONAL = (BSN, POSTCODE, NAME)
QUERY = {"bsn": BSN, "postcode": POSTCODE, "name": NAME}
UNMATCHED = [f"/fhir/Patient/{BSN}", f"/v1/patients/{BSN}", f"/{NAME}/{POSTCODE}", f"/fhir/Consent/{BSN}/{NAME}"]
PARAMETER = re.compile(r"\{[^}]+\}")


@pytest.mark.parametrize("service", ["consent", "melding", "routing", "fhir"])
async def test_no_span_holds_the_path_or_query_a_client_sent(
    environment: RunEnvironment, tokens: Tokens, service: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = service_settings(environment, service, environment.database_urls[service])
    app = SERVICES[service].parts.create_app(settings, run_workers=False, tracer_provider=provider)
    calls = [
        (method, PARAMETER.sub(BSN if i % 2 else NAME, route.path))
        for i, route in enumerate(r for router in app.state.routers for r in router.routes if isinstance(r, APIRoute))
        for method in sorted(route.methods or ())
    ] + [("GET", path) for path in UNMATCHED]
    assert len(calls) > 10
    headers = tokens.bearer(org_id="10000001", org_type="verloskundige", scopes="melding:read consent:read")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{service}") as client:
        for method, path in calls:
            for credentials in ({}, headers):
                await client.request(method, path, params=QUERY, headers=credentials)
    await app.state.database.dispose()

    spans = exporter.get_finished_spans()
    assert len([s for s in spans if s.kind.name == "SERVER"]) >= 2 * len(calls)
    for span in spans:
        texts = [span.name, *map(str, (span.attributes or {}).values()), *(e.name for e in span.events)]
        texts += [str(v) for e in span.events for v in (e.attributes or {}).values()]
        leaked = [p for p in PERSONAL if any(p in t for t in texts)]
        assert not leaked, (span.name, leaked, dict(span.attributes or {}))
    assert any(s.attributes and s.attributes.get("http.target") == "unmatched" for s in spans)


async def test_an_unexpected_error_quoting_input_reaches_no_span_and_is_a_500_problem(
    environment: RunEnvironment,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = service_settings(environment, "consent", environment.database_urls["consent"])
    app = SERVICES["consent"].parts.create_app(settings, run_workers=False, tracer_provider=provider)

    async def failing() -> None:
        raise KeyError(f"no patient {BSN} at {POSTCODE}")  # a bug whose message quotes input

    app.add_api_route("/v1/failing", failing)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://consent") as client:
        response = await client.get("/v1/failing")
    await app.state.database.dispose()
    assert response.status_code == 500
    assert response.json()["type"] == "urn:kansrijk:problem:internal"
    [span] = [s for s in exporter.get_finished_spans() if s.name == "GET /v1/failing"]
    texts = [str(span.status.description), *map(str, (span.attributes or {}).values())]
    texts += [f"{e.name} {dict(e.attributes or {})}" for e in span.events]
    assert any("KeyError" in t for t in texts)  # the type is kept, for the operator
    assert not [t for t in texts if BSN in t or POSTCODE in t], texts
