"""The frame every service's `create_app()` fills in: errors, observability, auth, database, broker, workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any, Generic, TypeVar

import structlog
from fastapi import APIRouter, Depends, FastAPI
from fastapi.telemetry import TelemetryConfig
from fastapi_offline import FastAPIOffline
from opentelemetry import trace
from sqlalchemy import Table

from shared.api import reject_unknown_query_parameters, require_json_body
from shared.audit import AUDIT_RETENTION, AuditTables
from shared.auth import ServiceTokens, TokenVerifier
from shared.clients.consent import ConsentClient
from shared.contracts.subscriptions import EventQueue
from shared.crypto import cipher_for
from shared.db import Database, UnitOfWork
from shared.edge import adopt_edge
from shared.messaging.broker import Broker
from shared.messaging.consumer import Handlers, IdempotentConsumer, Prepare
from shared.messaging.outbox import OutboxRelay, report_backlog
from shared.observability import Metrics, configure_logging, install_observability
from shared.openapi import install_openapi
from shared.problems import install_problem_handlers
from shared.retention import Purge, Retention, pruning_worker
from shared.server import BodyLimitMiddleware
from shared.settings import CallsConsentService, ServiceSettings
from shared.tracing import instrument_app, tracer_provider_for

log = structlog.get_logger(__name__)

Worker = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
DOCS_ASSETS = "/docs/assets"
# FastAPI's own OpenTelemetry (its global providers, or an exporter of its own with FASTAPI_OTEL_AUTO_CONFIGURE)
# is off: the service's spans come from shared.tracing, which names the route's template, never the path a
# client sent (FastAPI's span puts it in `url.path`: `/fhir/Patient/<BSN>`); its metrics are ours
# (shared.observability). Off, it also stops asking the global providers three questions per request.
NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "auto_configure": False}


S = TypeVar("S", bound=ServiceSettings)
U = TypeVar("U", bound=UnitOfWork)


@dataclass
class ServiceRuntime(Generic[S, U]):
    """What a service's routes and workers share: built once in `create_app()`, nothing at import time.

    `unit_of_work()` opens a transaction of the service's own kind (its repositories, outbox, audit log).
    """

    settings: S
    database: Database
    broker: Broker
    metrics: Metrics
    verifier: TokenVerifier
    unit_of_work: Callable[[], U]
    tracer_provider: trace.TracerProvider = field(default_factory=trace.NoOpTracerProvider)
    consent_client: ConsentClient | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def consent(self) -> ConsentClient:
        """The consent service's client (services that check consent: see `attach_consent_client`)."""
        if self.consent_client is None:
            raise RuntimeError("this service has no consent client: call attach_consent_client(runtime)")
        return self.consent_client

    @property
    def tracer(self) -> trace.Tracer:
        return self.tracer_provider.get_tracer("kansrijk")


def attach_consent_client(runtime: ServiceRuntime[Any, Any], settings: CallsConsentService) -> ConsentClient:
    """The consent service's client for a service that checks consent; closed with the service."""
    client = ConsentClient(
        settings.consent_url,
        ServiceTokens.for_settings(settings, scopes=["consent:check"]),
        timeout=settings.consent_timeout_seconds,
    )
    runtime.consent_client = client
    runtime.closers.append(client.aclose)
    return client


def retention_rules(
    settings: ServiceSettings,
    *,
    outbox: Table,
    audit: AuditTables,
    processed: Table | None = None,
    idempotency: Table | None = None,
) -> list[Retention]:
    """What a service deletes on a schedule: sent outbox rows, old processed-message ids, expired
    idempotency keys, and audit records past their five years."""
    rules = [
        Retention(outbox, outbox.c.sent_at, timedelta(hours=settings.outbox_retention_hours)),
        Retention(audit.log, audit.log.c.at, AUDIT_RETENTION),
    ]
    if processed is not None:
        rules.append(
            Retention(processed, processed.c.processed_at, timedelta(hours=settings.processed_retention_hours))
        )
    if idempotency is not None:
        rules.append(
            Retention(idempotency, idempotency.c.created_at, timedelta(hours=settings.idempotency_retention_hours))
        )
    return rules


def housekeeping(runtime: ServiceRuntime[Any, Any], rules: list[Retention], *, purge: Purge | None = None) -> Worker:
    """The service's scheduled pruning (`rules`) and purge of personal data that is due (`purge()`)."""
    return pruning_worker(runtime.database, rules, every_seconds=runtime.settings.prune_interval_seconds, purge=purge)


def outbox_relay(runtime: ServiceRuntime[Any, Any], table: Table, *, sweep: bool = True) -> OutboxRelay:
    """The service's outbox relay, configured from its settings. `sweep=False`: it publishes only what its own
    process commits (an API run without workers, whose worker process sweeps)."""
    settings = runtime.settings
    return OutboxRelay(
        runtime.database,
        runtime.broker,
        table,
        service=settings.service_name,
        metrics=runtime.metrics,
        batch_size=settings.outbox_batch_size,
        sweep_seconds=settings.outbox_sweep_seconds,
        publish_timeout=settings.publish_timeout_seconds,
        lease_seconds=settings.outbox_lease_seconds,
        sweep=sweep,
        kill_after_commit=settings.is_development and settings.fault_kill_after_commit,
        tracer=runtime.tracer,
    )


def event_consumer(
    runtime: ServiceRuntime[Any, U],
    processed: Table,
    *,
    name: str,
    queue: EventQueue,
    handlers: Handlers[U],
    prepare: dict[str, Prepare] | None = None,
    after_commit: Callable[[], None] | None = None,
    keeps_a_view: bool = False,
) -> IdempotentConsumer[U]:
    """A consumer of one of the service's queues: each message handled once (`processed` remembers its id),
    in batches, each in one of the service's own transactions, with its metrics and traces. `keeps_a_view`:
    it updates a view (not a melding's way to its recipient), so it waits `consumer_view_batch_wait_ms` for a
    fuller batch."""
    settings = runtime.settings
    wait_ms = settings.consumer_view_batch_wait_ms if keeps_a_view else settings.consumer_batch_wait_ms
    return IdempotentConsumer(
        runtime.unit_of_work,
        runtime.broker,
        processed,
        metrics=runtime.metrics,
        tracer=runtime.tracer,
        name=name,
        queue=queue,
        handlers=handlers,
        prepare=prepare,
        batch_size=settings.consumer_batch_size,
        batch_wait=wait_ms / 1000,
        after_commit=after_commit,
    )


def build_runtime(
    settings: S,
    unit_of_work: Callable[[Database], Callable[[], U]],
    *,
    tracer_provider: trace.TracerProvider | None = None,
) -> ServiceRuntime[S, U]:
    """The runtime of a service; `unit_of_work(database)` is the service's factory of its units of work.
    `tracer_provider`: where its spans go (default: as its settings say, shared.tracing)."""
    database = Database(
        settings.database_url,
        cipher=cipher_for(settings),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
    )
    return ServiceRuntime(
        settings=settings,
        database=database,
        broker=Broker(settings.amqp_url, client_name=f"kansrijk-{settings.service_name}", nodes=settings.amqp_nodes),
        metrics=Metrics(settings.service_name),
        verifier=TokenVerifier(settings),
        unit_of_work=unit_of_work(database),
        tracer_provider=tracer_provider or tracer_provider_for(settings),
    )


def create_service_app(
    runtime: ServiceRuntime[S, U],
    *,
    title: str,
    description: str,
    routers: list[APIRouter],
    workers: Callable[[ServiceRuntime[S, U]], list[Worker]],
    outbox: Table,
    run_workers: bool = True,
    configure_logs: bool = True,
) -> FastAPI:
    """A FastAPI app whose lifespan runs the service's workers (relay, consumers) beside the API.

    Workers connect to the broker in the background, retrying, so the API serves (and its outbox
    fills) even while RabbitMQ is away. On shutdown they are told to stop and given time to finish.
    """
    settings = runtime.settings
    if configure_logs:
        configure_logging(settings.service_name, settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Two phases on shutdown: first the consumers and other work stop taking messages and finish what
        # they hold (which may stage outbox rows), then the relays flush everything committed up to then.
        stop_work, stop_relays = asyncio.Event(), asyncio.Event()
        work: list[asyncio.Task[None]] = []
        relays: list[asyncio.Task[None]] = []
        for worker in workers(runtime) if run_workers else []:
            if isinstance(getattr(worker, "__self__", None), OutboxRelay):
                relays.append(asyncio.create_task(worker(stop_relays)))
            else:
                work.append(asyncio.create_task(worker(stop_work)))
        if not run_workers and settings.outbox_hand_off_in_api:
            relays.append(asyncio.create_task(outbox_relay(runtime, outbox, sweep=False).run(stop_relays)))
        log.info("service_started", workers=len(work) + len(relays))
        try:
            yield
        finally:
            grace = settings.publish_timeout_seconds + 5
            for event, tasks in ((stop_work, work), (stop_relays, relays)):
                event.set()
                await _finish(tasks, grace)
            for close in runtime.closers:
                await close()
            await runtime.broker.close()
            await runtime.database.dispose()
            log.info("service_stopped")

    # The documentation page's scripts, styles and icon come from the service itself (fastapi-offline ships
    # Swagger UI and ReDoc): health-care networks are closed, and a page that loads from a CDN is blank there.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        openapi_tags=[{"name": "operations", "description": "Health and metrics."}],
        dependencies=[Depends(reject_unknown_query_parameters), Depends(require_json_body)],
        telemetry=NO_NATIVE_TELEMETRY,
    )
    install_openapi(app)
    app.state.runtime = runtime
    app.state.database = runtime.database
    app.state.unit_of_work = runtime.unit_of_work
    app.state.broker = runtime.broker
    app.state.token_verifier = runtime.verifier
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    install_observability(app, runtime.metrics)
    instrument_app(app, runtime.tracer_provider)
    runtime.metrics.scrapers.append(partial(report_backlog, runtime.database, outbox, runtime.metrics))
    app.state.routers = routers
    adopt_edge(app, routers, settings.expensive_requests_per_org)
    for router in routers:
        app.include_router(router)
    return app


async def _finish(tasks: list[asyncio.Task[None]], timeout: float) -> None:
    """Wait for workers that were told to stop; cancel what is still running after `timeout`."""
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        log.warning("worker_stop_timed_out", worker=getattr(task.get_coro(), "__qualname__", task.get_name()))
        task.cancel()
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("worker_failed", error_type=type(task.exception()).__name__)
