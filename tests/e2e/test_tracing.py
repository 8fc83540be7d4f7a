"""One melding is one trace across the three services (issue 20, OpenTelemetry): the EHR's request, the
consent check, the outbox publish, routing's consume, the delivery publish and the status going back to
the melding service share one trace id, carried as W3C `traceparent` over HTTP and in AMQP headers — and
no span carries personal data."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aio_pika
import httpx
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import service_settings
from tests.e2e.flow import (
    BSN,
    admin,
    eventually,
    melding_body,
    recipient,
    record_consent,
    send,
    status_is,
)
from tests.support import RunEnvironment, Tokens, _free_port, create_database, drop_database, scratch_vhost
from tools.stack import run_stack

SERVICES = ("consent", "melding", "routing")


@contextlib.asynccontextmanager
async def traced_system(
    environment: RunEnvironment, exporter: InMemorySpanExporter
) -> AsyncIterator[tuple[dict[str, httpx.AsyncClient], str]]:
    """The three services in a vhost and databases of their own, each exporting its spans to `exporter`."""
    providers: dict[str, trace.TracerProvider] = {}
    for name in SERVICES:
        provider = TracerProvider(resource=Resource.create({"service.name": f"kansrijk-{name}"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers[name] = provider
    databases = {name: await create_database(environment, name, suffix="_traced") for name in SERVICES}
    ports = {name: _free_port() for name in SERVICES}
    try:
        async with scratch_vhost(environment, "traced") as amqp_url:
            common = {"amqp_url": amqp_url, "consent_url": f"http://127.0.0.1:{ports['consent']}"}
            settings = {
                name: service_settings(
                    environment, name, databases[name], port=ports[name], **(common if name != "consent" else {})
                )
                for name in SERVICES
            }
            async with run_stack(settings, tracer_providers=providers) as urls:
                clients = {name: httpx.AsyncClient(base_url=url, timeout=15) for name, url in urls.items()}
                try:
                    yield clients, amqp_url
                finally:
                    for client in clients.values():
                        await client.aclose()
    finally:
        for url in databases.values():
            await drop_database(environment, url)


def _service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"]).removeprefix("kansrijk-")


async def test_one_melding_is_one_trace_across_the_three_services_and_no_span_carries_personal_data(
    environment: RunEnvironment, tokens: Tokens
) -> None:
    exporter = InMemorySpanExporter()
    async with traced_system(environment, exporter) as (system, amqp_url):
        put = await system["routing"].put(
            "/v1/gemeenten/GM0363",
            headers=admin(tokens),
            json={"name": "Amsterdam", "postcode_ranges": [{"from": "1011", "to": "1109"}]},
        )
        assert put.status_code in (200, 201), put.text
        jgz = "87654321"
        made = await system["routing"].put(
            f"/v1/organisations/{jgz}",
            headers=admin(tokens),
            json={"name": "GGD", "type": "jgz", "gemeenten": ["GM0363"]},
        )
        assert made.status_code in (200, 201), made.text
        preview = await system["routing"].get("/v1/route", headers=admin(tokens), params={"postcode": "1011AB"})
        assert preview.status_code == 200
        consent_id = await record_consent(system, tokens, types=["jgz"])
        sent = await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))
        assert sent.status_code == 202, sent.text
        melding_id = sent.json()["id"]

        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(f"kansrijk.deliveries.{jgz}", ensure=False)

            async def delivered() -> aio_pika.abc.AbstractIncomingMessage | None:
                return await queue.get(no_ack=True, fail=False)

            message = await eventually(delivered)
        received = await system["routing"].post(
            f"/v1/deliveries/{message.message_id}/status", headers=recipient(tokens, jgz), json={"status": "received"}
        )
        assert received.status_code == 200

        async def known_as_delivered() -> bool:
            return await status_is(system, tokens, melding_id, "delivered")

        await eventually(known_as_delivered)
        await eventually(lambda: _async(any(s.name == "consume melding.routed" for s in exporter.get_finished_spans())))

    spans = exporter.get_finished_spans()
    [intake] = [s for s in spans if _service(s) == "melding" and s.name == "POST /v1/meldingen"]
    trace_id = intake.context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    seen = {(_service(s), s.name) for s in in_trace}
    assert {
        ("melding", "POST /v1/meldingen"),  # the EHR's request
        # (the consent check, "POST /v1/consents/check", is in it when intake asked the consent service: a
        # consent the melding service's own record had not heard of yet; otherwise it is decided in intake)
        ("melding", "publish melding.accepted"),  # the outbox publish
        ("routing", "consume melding.accepted"),  # routing's consume
        ("routing", "publish melding.delivered"),  # the delivery publish
        ("routing", "publish melding.routed"),
        ("melding", "consume melding.routed"),  # the status going back
    } <= seen, sorted(seen)
    # The recipient's message carries the trace on, for its own tracing if it has one.
    traceparent = str((message.headers or {}).get("traceparent", ""))
    assert traceparent.split("-")[1] == format(trace_id, "032x")

    # No personal data anywhere in any span of the run: names, attributes, events.
    body = melding_body(consent_id, recipient_types=["jgz"])
    personal = [
        BSN, body["patient"]["name"]["family"], body["patient"]["name"]["given"], body["patient"]["birth_date"],
        body["patient"]["address"]["postcode"], "1011AB", body["patient"]["phone"], body["note"], "verslaving",
    ]  # fmt: skip
    for span in spans:
        texts = [span.name, *map(str, (span.attributes or {}).values()), *(e.name for e in span.events)]
        texts += [str(v) for e in span.events for v in (e.attributes or {}).values()]
        leaked = [p for p in personal if p and any(p in t for t in texts)]
        assert not leaked, (span.name, leaked)


async def _async(value: bool) -> bool:
    return value
