"""Logs (one JSON object per line, with the request id), the request-id middleware, metrics and health.

Log lines carry ids, counts and outcomes — never a BSN, name, address or note. The access line names the
route's template (`/v1/meldingen/{melding_id}`), never the path a client sent; query strings and bodies
are not logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
SCRAPE_TIMEOUT_SECONDS = 5.0
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A request id the client sends is logged, echoed and stored in the audit log: it must not be able to carry
# a BSN, a phone number or a date of birth. Accepted: a UUID (with or without hyphens), or a short token of
# letters, digits and `._:-` with no run of more than four digits (`ehr-trace-42`). Anything else is
# replaced by an id of our own.
_UUID_FORMAT = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_TOKEN_FORMAT = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_DIGIT_RUN = re.compile(r"[0-9]{5}")


def is_safe_request_id(value: str) -> bool:
    """Whether a client's request id may be logged and passed on as it is (see above)."""
    if _UUID_FORMAT.fullmatch(value):
        return True
    return _TOKEN_FORMAT.fullmatch(value) is not None and _DIGIT_RUN.search(value) is None


# Drivers that log SQL parameters or message bodies at DEBUG/INFO: a BSN would reach the log. They
# stay at WARNING whatever KANSRIJK_LOG_LEVEL says.
_QUIET_LOGGERS = (
    "aiosqlite",
    "asyncpg",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "aio_pika",
    "aiormq",
    "httpx",
    "httpcore",
    "alembic.runtime.migration",
)

_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def json_formatter(service: str) -> logging.Formatter:
    """Renders every record, ours and the libraries', as one JSON object per line."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _add_service(service),
            render_exception_safely,
            structlog.processors.JSONRenderer(),
        ],
    )


def render_exception_safely(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """An exception as its types and frames, never its messages: a message may quote input (a BSN).

    Also drops the exception text some libraries put in the event itself (uvicorn's "Exception in ASGI
    application" keeps it in `exc_info` only, which is what we render here).
    """
    exc_info = event.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if exc_info and exc_info[1] is not None:
        chain, exc, seen = [], exc_info[1], set()
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            frames = traceback.extract_tb(exc.__traceback__)[-3:]
            where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
            chain.append(f"{type(exc).__module__}.{type(exc).__qualname__} at {where}")
            exc = exc.__cause__ or exc.__context__
        event["exception"] = " | caused by ".join(chain)
    return event


def configure_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stdout for structlog and the standard library alike (uvicorn, aio-pika)."""
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log would repeat ours, with query strings; ours is the one to read.
    logging.getLogger("uvicorn.access").disabled = True
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def _add_service(service: str) -> Any:
    def processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("service", service)
        return event

    return processor


def new_request_id() -> str:
    return uuid.uuid4().hex


class Metrics:
    """A service's own metrics registry (several services may share one process in tests)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kansrijk_http_requests",
            "HTTP requests handled",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kansrijk_http_request_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self.outbox_published = Counter(
            "kansrijk_outbox_published",
            "Outbox messages confirmed by the broker",
            ["service"],
            registry=self.registry,
        )
        self.outbox_failed = Counter(
            "kansrijk_outbox_publish_failures",
            "Outbox publishes not confirmed (will be retried)",
            ["service"],
            registry=self.registry,
        )
        # Read from the database when /metrics is scraped (see `scrapers`): what an operator alerts on.
        self.outbox_backlog = Gauge(
            "kansrijk_outbox_backlog",
            "Outbox messages committed but not yet confirmed by the broker",
            ["service"],
            registry=self.registry,
        )
        self.outbox_oldest = Gauge(
            "kansrijk_outbox_oldest_unsent_seconds",
            "Age of the oldest unsent outbox message (0 when none)",
            ["service"],
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "kansrijk_dead_letters",
            "Dead-lettered messages not replayed yet (routing keeps them)",
            ["service"],
            registry=self.registry,
        )
        self.unroutable = Gauge(
            "kansrijk_unroutable_meldingen",
            "Meldingen waiting for a recipient (GET /v1/unroutable)",
            ["service"],
            registry=self.registry,
        )
        self.overdue = Gauge(
            "kansrijk_overdue_deliveries",
            "Deliveries past their contact deadline still without contact (GET /v1/overdue)",
            ["service"],
            registry=self.registry,
        )
        self.consumer_failures = Counter(
            "kansrijk_consumer_failures",
            "Messages a consumer could not process: rejected as unreadable, given back, or waiting for a dependency",
            ["service", "consumer", "error_type"],
            registry=self.registry,
        )
        # The standard process_* (CPU, memory, open files), python_info and python_gc_* metrics.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.service = service
        # Called before each scrape to set the gauges that are read from the database.
        self.scrapers: list[Callable[[], Awaitable[None]]] = []

    async def refresh(self) -> None:
        """Run the scrapers; one that fails (its database away) leaves its gauges as they were."""
        for scraper in self.scrapers:
            try:
                await asyncio.wait_for(scraper(), timeout=SCRAPE_TIMEOUT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - the metrics endpoint answers regardless: the operator sees the staleness
                structlog.get_logger(__name__).warning("metrics_refresh_failed", error_type=type(exc).__name__)


class UnexpectedError(Exception):
    """An exception no handler answered, without its message: the message may quote input (a BSN), and the
    tracing middleware outside would put it in the span (its status and an `exception` event). `error_type`
    names the original's type; the original stays the `__context__`, for the logs' frames."""

    def __init__(self, original: BaseException) -> None:
        self.error_type = type(original).__name__
        super().__init__(f"{type(original).__module__}.{type(original).__qualname__}")


class RequestContextMiddleware:
    """`X-Request-ID` in and out, bound to every log line of the request; one access line per request.

    A pure ASGI middleware, so that it wraps exception handlers and streaming alike.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = structlog.get_logger("kansrijk.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        request_id = incoming if is_safe_request_id(incoming) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # noqa: BLE001 - re-raised without its message, answered 500 as before
            raise UnexpectedError(exc) from None
        finally:
            elapsed = time.perf_counter() - started
            route_path = _route_template(scope)
            method = scope.get("method", "")
            if method not in _METHODS:
                method = "other"  # a client's made-up method must not grow the metrics or reach the log
            self.metrics.requests.labels(self.metrics.service, method, route_path, str(status)).inc()
            self.metrics.latency.labels(self.metrics.service, method, route_path).observe(elapsed)
            if not scope["path"].startswith(("/health", "/metrics")):
                # The route's template, never the raw path: a path may be anything a client typed (a BSN).
                self.log.info(
                    "http_request", method=method, route=route_path, status=status, duration_ms=round(elapsed * 1000, 1)
                )
            structlog.contextvars.unbind_contextvars("request_id")


def _route_template(scope: Scope) -> str:
    """What the request matched, as a template (never an id or personal data): a route's path, a mount's
    prefix (the documentation's assets), or `unmatched`."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    if scope.get("endpoint") is not None and scope.get("root_path"):
        return str(scope["root_path"])  # a mounted app (static files): its prefix
    return "unmatched"


def health_router() -> APIRouter:
    """`/health/live`, `/health/ready` and `/metrics` — the same for every service."""
    router = APIRouter(tags=["operations"])

    @router.get("/health/live", summary="The process is up")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/health/ready",
        summary="The service can do its job",
        description="200 while the database answers, else 503. The broker is reported but does not "
        "take the service out of rotation: the API keeps accepting work into its outbox while RabbitMQ "
        "is away.",
        responses={503: {"description": "the database does not answer"}},
    )
    async def ready(request: Request) -> JSONResponse:
        state = request.app.state
        checks: dict[str, str] = {}
        try:
            await state.database.ping()
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the type is enough for the operator
            checks["database"] = f"unavailable ({type(exc).__name__})"
        broker = getattr(state, "broker", None)
        checks["broker"] = "ok" if broker is not None and broker.is_connected else "unavailable"
        ok = checks["database"] == "ok"
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        metrics: Metrics = request.app.state.metrics
        await metrics.refresh()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def install_observability(app: FastAPI, metrics: Metrics) -> None:
    app.state.metrics = metrics
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.include_router(health_router())
