"""How every service is served: uvicorn with the limits a service on a hospital network needs.

uvicorn closes idle keep-alive connections but gives a client unlimited time to send its request: a
client that trickles its headers a byte at a time (slowloris) holds a connection, and a process's worth
of them holds the service. `GuardedHttpProtocol` gives each request a deadline from its first byte (or
from the connection's opening) to its last; a connection that misses it is closed. Bodies are bounded by
`BodyLimitMiddleware` (shared.app installs it), connections per process by uvicorn's `limit_concurrency`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import uvicorn
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.problems import problem_response
from shared.settings import ServiceSettings


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for receiving each whole request."""

    request_timeout: float = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is a request that never completes

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class Server(uvicorn.Server):
    """uvicorn's server, woken once a second when idle instead of ten times.

    uvicorn's main loop polls `should_exit` every 0.1 s and refreshes the Date header once a second; in an
    idle service that poll was about a third of the CPU (py-spy, `kansrijk up`). Here the loop sleeps a second
    (the Date header's resolution) and setting `should_exit` (SIGTERM, Ctrl-C, a test stopping its server)
    wakes it at once, so shutting down is as quick as before."""

    tick_seconds = 1.0
    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def should_exit(self) -> bool:
        return bool(self.__dict__.get("_should_exit", False))

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self.__dict__["_should_exit"] = value
        if value and self._wake is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)  # safe from a signal handler, too

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000  # uvicorn's ticks are tenths: every one of ours is a whole second
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_seconds)
            should_exit = await self.on_tick(counter)


def server_config(app: Any, settings: ServiceSettings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration of a service: its host and port, its HTTP limits, our logging."""
    protocol = type(
        "ServiceHttpProtocol", (GuardedHttpProtocol,), {"request_timeout": settings.http_request_timeout_seconds}
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": protocol,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "limit_concurrency": settings.http_max_connections,
        # Logging is configured by the app (JSON lines); uvicorn's own config would replace it.
        "log_config": None,
        "lifespan": "on",
        "timeout_graceful_shutdown": int(settings.publish_timeout_seconds) + 5,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


class BodyLimitMiddleware:
    """A request body over `limit` bytes is answered 413 before it is read: by its Content-Length at once,
    and a chunked one as soon as the bytes received pass the limit. Nothing of it is stored."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            response = problem_response(
                "payload-too-large",
                "Payload too large",
                self._detail(),
                request=Request(scope),
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Raised where the body is read; the problem handlers answer it as a 413.
                    raise HTTPException(status_code=413, detail=self._detail())
            return message

        await self.app(scope, limited, send)

    def _detail(self) -> str:
        return f"the request body may hold at most {self.limit} bytes"
