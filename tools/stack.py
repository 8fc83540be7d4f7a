"""All services in one process, each a real uvicorn server on its own port: for `kansrijk demo` and e2e tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from opentelemetry.trace import TracerProvider

from services.registry import SERVICES
from shared import migrations
from shared.crypto import cipher_for
from shared.server import Server, server_config
from shared.settings import ServiceSettings


class _Server(Server):
    def install_signal_handlers(self) -> None:  # the host process owns its signals
        pass

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def run_stack(
    settings: dict[str, ServiceSettings],
    *,
    migrate: bool = True,
    tracer_providers: dict[str, TracerProvider] | None = None,
) -> AsyncIterator[dict[str, str]]:
    """Start every service in `settings` (migrated first); yields their base URLs; stops them all on exit.
    `tracer_providers`: per service, where its spans go (default: as its settings say)."""
    servers: list[tuple[_Server, asyncio.Task[None]]] = []
    try:
        for name, service_settings in settings.items():
            if migrate:
                await asyncio.to_thread(
                    migrations.upgrade, name, service_settings.database_url, cipher=cipher_for(service_settings)
                )
            provider = (tracer_providers or {}).get(name)
            app = SERVICES[name].app_factory()(service_settings, tracer_provider=provider)
            server = _Server(server_config(app, service_settings))
            task = asyncio.create_task(server.serve())
            servers.append((server, task))
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise RuntimeError(f"{name} stopped while starting")
                await asyncio.sleep(0.05)
        yield {name: f"http://{s.host}:{s.port}" for name, s in settings.items()}
    finally:
        for server, _ in servers:
            server.should_exit = True
        for _, task in servers:
            with contextlib.suppress(Exception):
                await task
