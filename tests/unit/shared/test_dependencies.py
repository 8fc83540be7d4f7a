"""Every dependency of every service's routes is `async`: FastAPI runs a plain `def` dependency in its thread
pool, a thread hop on every request. A one-line `def unit_of_work(request)` cost the consent service ~13 % and
the melding service ~7 % of their CPU under load (py-spy, docs/performance.md)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute

from services.registry import SERVICES

# Classes FastAPI builds from query parameters (run in the thread pool too, but they are the parameters of a rare,
# expensive route: the programme figures), not functions doing a lookup.
QUERY_MODELS = frozenset({"FiguresAsked"})


def _plain_functions(dependant: Any) -> set[str]:
    """The dependencies FastAPI would run in its thread pool, searched through the whole tree."""
    found = set()
    call = dependant.call
    if call is not None:
        if inspect.isclass(call):
            if call.__name__ not in QUERY_MODELS:
                found.add(f"{call.__module__}.{call.__qualname__} (a class)")
        else:
            method = call if inspect.isroutine(call) else type(call).__call__  # an instance used as a dependency
            if not (inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method)):
                found.add(f"{call.__module__}.{getattr(call, '__qualname__', type(call).__qualname__)}")
    for sub in dependant.dependencies:
        found |= _plain_functions(sub)
    return found


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_no_route_of_a_service_has_a_dependency_run_in_the_thread_pool(name: str, tmp_path: Path) -> None:
    entry = SERVICES[name]
    app = entry.app_factory()(entry.settings(data_dir=tmp_path), run_workers=False)
    routes = [route for router in app.state.routers for route in router.routes if isinstance(route, APIRoute)]
    assert routes, "the service's routes were found"
    sync = {
        f"{sorted(route.methods or ())[0]} {route.path}: {found}"
        for route in routes
        for found in _plain_functions(route.dependant)
    }
    for dependency in app.router.dependencies:  # the app's own, which every route runs
        sync |= {f"the app: {found}" for found in _plain_functions(get_dependant(path="", call=dependency.dependency))}
    assert not sync, "make these `async def` (a plain def runs in the thread pool)"
