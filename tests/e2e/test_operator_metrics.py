"""What an operator alerts on, from each service's /metrics (docs/reliability.md, "What to alert on")."""

from __future__ import annotations

import re
import uuid

import aio_pika
import httpx

from tests.e2e.flow import admin, eventually, melding_body, record_consent, send
from tests.support import Tokens

Clients = dict[str, httpx.AsyncClient]


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None if it is not there."""
    for line in metrics.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_every_service_reports_its_outbox_and_process_and_counts_docs_and_health_as_routes(
    system: Clients,
) -> None:
    def count(metrics: str, **labels: str) -> float:  # the stack serves every test: compare before and after
        return sample(metrics, "kansrijk_http_requests_total", **labels) or 0.0

    for service, client in system.items():
        before = (await client.get("/metrics")).text
        docs = await client.get("/docs")
        assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', docs.text)
        assert docs.status_code == 200 and len(assets) == 3, (service, assets)
        for asset in assets:  # the page works on a closed network: nothing from a CDN
            assert (await client.get(asset)).status_code == 200
        assert "cdn" not in docs.text.lower()
        await client.get("/health/ready")
        await client.get("/health/live")
        metrics = (await client.get("/metrics")).text
        assert sample(metrics, "kansrijk_outbox_backlog", service=service) is not None, service
        assert sample(metrics, "kansrijk_outbox_oldest_unsent_seconds", service=service) is not None, service
        assert sample(metrics, "process_cpu_seconds_total") is not None, service
        assert sample(metrics, "process_resident_memory_bytes") is not None, service
        for route, requests in (("/docs", 1), ("/docs/assets", 3), ("/health/ready", 1)):
            assert count(metrics, route=route) - count(before, route=route) == requests, (service, route)
        assert count(metrics, route="unmatched") == count(before, route="unmatched"), service


async def test_waiting_meldingen_dead_letters_and_consumer_failures_show_in_routings_metrics(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    poisoned_before = (
        sample(
            (await system["routing"].get("/metrics")).text,
            "kansrijk_consumer_failures_total",
            consumer="routing",
            error_type="PoisonMessage",
        )
        or 0.0
    )  # a counter: since the start
    consent_id = await record_consent(system, tokens, types=["jgz"])  # no JGZ anywhere: it waits
    assert (await send(system, tokens, melding_body(consent_id, recipient_types=["jgz"]))).status_code == 202
    exchange = await amqp.get_exchange("kansrijk.events", ensure=False)
    await exchange.publish(
        aio_pika.Message(b"\x00not json", message_id=f"garbage-{uuid.uuid4()}", type="melding.accepted"),
        routing_key="melding.accepted",
    )

    async def alerting() -> str | None:
        metrics = (await system["routing"].get("/metrics")).text
        poisoned = sample(metrics, "kansrijk_consumer_failures_total", consumer="routing", error_type="PoisonMessage")
        ready = (
            sample(metrics, "kansrijk_unroutable_meldingen", service="routing") == 1
            and (sample(metrics, "kansrijk_dead_letters", service="routing") or 0) >= 1
            and (poisoned or 0) - poisoned_before == 1
        )
        return metrics if ready else None

    await eventually(alerting, timeout=20)
    waiting = (await system["routing"].get("/v1/unroutable", headers=admin(tokens))).json()["items"]
    assert len(waiting) == 1
