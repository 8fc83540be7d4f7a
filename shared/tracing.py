"""Traces across the services (OpenTelemetry): one melding is one trace, from the EHR's request through the
consent check, the outbox publish, routing's consume and its delivery publish, to the status going back.

W3C `traceparent` carries the context over HTTP (FastAPI's instrumentation reads it; the consent client
sends it) and in AMQP headers: the outbox keeps the context of the transaction that staged a message and
the relay publishes it with the message; a consumer continues the trace of the message it takes.

Off by default (`KANSRIJK_TRACING_EXPORTER=none`: no spans are made at all); `otlp` exports over OTLP/HTTP
(the endpoint from `KANSRIJK_TRACING_OTLP_ENDPOINT` or the standard `OTEL_EXPORTER_OTLP_*` variables),
`console` prints them. No span carries personal data: the spans are named by route templates and message
types, ids are the platform's own UUIDs, and a request's span holds its route's template where the
instrumentation would put the path and the URL (`/fhir/Patient/<BSN>` is a path a client may send), with
no query string (a postcode in `GET /v1/route`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shared.settings import ServiceSettings

# Spans of these paths would only be noise: probes and scrapes every few seconds.
UNTRACED_PATHS = "health/live,health/ready,metrics"


def tracer_provider_for(settings: ServiceSettings) -> trace.TracerProvider:
    """The service's tracer provider as its settings ask: none (the default), OTLP or the console."""
    if settings.tracing_exporter == "none":
        return trace.NoOpTracerProvider()
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": f"kansrijk-{settings.service_name}"}))
    exporter: SpanExporter
    if settings.tracing_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.tracing_otlp_endpoint or None)
    else:
        exporter = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def instrument_app(app: FastAPI, provider: trace.TracerProvider) -> None:
    """Server spans for every request, continuing a caller's `traceparent`."""
    if isinstance(provider, trace.NoOpTracerProvider):
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=UNTRACED_PATHS,
        server_request_hook=_route_not_path,
        exclude_spans=["receive", "send"],  # the ASGI message spans say nothing an operator needs
    )


# What the instrumentation fills with the path a client sent, and the full URL (old and new conventions).
_PATH_ATTRIBUTES = ("http.target", "url.path")
_URL_ATTRIBUTES = ("http.url", "url.full")


def _route_not_path(span: Any, scope: Mapping[str, Any]) -> None:
    """A span names the route's template, never the path or the query a client sent: a path may hold a BSN
    (`/fhir/Patient/<BSN>`), a query a postcode. The instrumentation has matched the route by now (its
    `http.route`); a path that matches no route is `unmatched`, as in the access log."""
    if span is None or not span.is_recording():
        return
    attributes: Mapping[str, Any] = getattr(span, "attributes", None) or {}
    template = str(attributes.get("http.route") or "unmatched")
    span.set_attribute("http.target", template)
    for key in _PATH_ATTRIBUTES[1:]:
        if key in attributes:
            span.set_attribute(key, template)
    for key in _URL_ATTRIBUTES:
        if key in attributes:
            origin = urlsplit(str(attributes[key]))
            span.set_attribute(key, f"{origin.scheme}://{origin.netloc}/{template.lstrip('/')}")
    if "url.query" in attributes:
        span.set_attribute("url.query", "(dropped)")


def current_context() -> dict[str, str] | None:
    """The trace context to carry with a message staged now (None when nothing is traced)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current trace context to outgoing HTTP headers."""
    propagate.inject(headers)


@contextlib.contextmanager
def continued(
    tracer: trace.Tracer, name: str, carrier: Mapping[str, Any] | None, kind: trace.SpanKind, **attributes: str
) -> Iterator[None]:
    """A span named `name`, a child of the context in `carrier` (a message's headers), current inside."""
    parent = propagate.extract({k: v.decode() if isinstance(v, bytes) else str(v) for k, v in (carrier or {}).items()})
    token = otel_context.attach(parent)
    try:
        with tracer.start_as_current_span(name, kind=kind, attributes=attributes):
            yield
    finally:
        otel_context.detach(token)
