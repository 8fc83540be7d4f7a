"""shared.tracing: off makes no spans; a query string never reaches a span; the context travels in a carrier."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.registry import SERVICES
from shared.settings import ServiceSettings
from shared.tracing import _route_not_path, continued, current_context, tracer_provider_for


def test_tracing_is_off_unless_an_exporter_is_set() -> None:
    assert isinstance(tracer_provider_for(ServiceSettings()), trace.NoOpTracerProvider)
    assert current_context() is None  # nothing to carry: no span is made
    provider = tracer_provider_for(ServiceSettings(tracing_exporter="console"))
    assert isinstance(provider, TracerProvider)
    provider.shutdown()


def test_a_consumer_continues_the_trace_it_is_handed_and_hands_it_on() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /v1/meldingen") as intake:
        staged = current_context()
    assert staged is not None and format(intake.get_span_context().trace_id, "032x") in staged["traceparent"]
    headers = {"x-request-id": b"r-1", **{k: v.encode() for k, v in staged.items()}}  # as AMQP hands them
    with continued(tracer, "consume melding.accepted", headers, trace.SpanKind.CONSUMER):
        onward = current_context()
    [_, consumed] = exporter.get_finished_spans()
    assert consumed.context.trace_id == intake.get_span_context().trace_id
    assert consumed.parent is not None and consumed.parent.span_id == intake.get_span_context().span_id
    assert onward is not None and format(consumed.context.span_id, "016x") in onward["traceparent"]


def test_the_server_span_keeps_the_route_template_not_the_path_nor_the_query() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /v1/route") as span:
        span.set_attribute("http.route", "/v1/route")
        span.set_attribute("http.target", "/v1/route?postcode=1011AB")
        span.set_attribute("http.url", "http://routing/v1/route?postcode=1011AB")
        _route_not_path(span, {"path": "/v1/route", "query_string": b"postcode=1011AB"})
    with tracer.start_as_current_span("GET") as span:  # a path no route matches
        span.set_attribute("http.target", "/fhir/Patient/999999990")
        span.set_attribute("url.path", "/fhir/Patient/999999990")
        span.set_attribute("url.full", "http://fhir/fhir/Patient/999999990")
        _route_not_path(span, {"path": "/fhir/Patient/999999990", "query_string": b""})
    [routed, unmatched] = exporter.get_finished_spans()
    assert routed.attributes is not None and unmatched.attributes is not None
    assert routed.attributes["http.target"] == "/v1/route"
    assert routed.attributes["http.url"] == "http://routing/v1/route"
    assert unmatched.attributes["http.target"] == unmatched.attributes["url.path"] == "unmatched"
    assert unmatched.attributes["url.full"] == "http://fhir/unmatched"
    for finished in (routed, unmatched):
        assert "1011AB" not in str(dict(finished.attributes or {}))
        assert "999999990" not in str(dict(finished.attributes or {}))


async def test_fastapis_own_telemetry_makes_no_span_even_with_a_global_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI's native OpenTelemetry would put the path a client sent in `url.path` of a span of its own, with
    whatever global provider the process has: a service's app has it off (shared.app), whatever is configured."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    entry = SERVICES["consent"]
    app = entry.app_factory()(entry.settings(data_dir=tmp_path), run_workers=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://consent") as client:
        answered = await client.get("/fhir/Patient/999999990")
    assert answered.status_code == 404
    assert exporter.get_finished_spans() == ()
