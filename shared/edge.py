"""What every request to a route passes before the route reads it: the caller's token, a per-organisation
limit on the expensive endpoints, and a bound on how deeply its JSON body nests.

FastAPI reads and parses a route's body before it runs the route's dependencies: the token check (a
dependency) came after the JSON was parsed, so an unauthenticated client could make the service parse
whatever it sent. `EdgeRoute` does the checks first, in this order, each before the next costs anything:

1. a route that needs a caller (its dependencies reach `current_principal`) verifies the token: no token or a
   bad one is a 401 before a byte of the body is read;
2. an endpoint marked `@expensive` (a FHIR Bundle, the recipient's message feed, the country's figures) is
   run by at most `expensive_requests_per_org` requests of one organisation at once (per process); one more
   is a 429 with `Retry-After`, and other organisations are not held up by it;
3. a JSON body is read (within `max_body_bytes`) and refused with 422 if it nests deeper than
   MAX_JSON_DEPTH levels: a parser or validator that recurses must never meet a body that exhausts the stack.

`create_service_app` makes every route of a service an `EdgeRoute` (`adopt_edge`), so no route can miss it.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from shared.auth import bearer_scheme, current_principal
from shared.errors import DomainError, ValidationFailed
from shared.problems import problem_responses

F = TypeVar("F", bound=Callable[..., Any])

# Deeper than any document of the platform (a FHIR Bundle nests about 10 levels) and far from Python's
# recursion limit (1000), which json, pydantic and fhir.resources all recurse towards.
MAX_JSON_DEPTH = 64

_EXPENSIVE: set[Callable[..., Any]] = set()
# A JSON string (with its escapes): its brackets are text, not nesting.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_NESTING = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class TooManyRequests(DomainError):
    """The caller's organisation has as many requests of this kind running as it may: retry shortly."""

    slug, title = "too-many-requests", "Too many requests"


def expensive(endpoint: F) -> F:
    """Mark a route whose requests cost much (CPU, a large query): one organisation runs only a few at once."""
    _EXPENSIVE.add(endpoint)
    return endpoint


def json_depth(body: bytes) -> int:
    """How deeply a JSON text nests its arrays and objects (brackets inside strings do not count).

    Runs in C over the bytes (a regex and `bytes.translate`), without parsing: it must be cheap for the
    largest body a service takes, and safe for any body at all (an invalid one gets a number too; the parser
    refuses it afterwards).
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_A_BRACKET)
    return max(accumulate(_NESTING[b] for b in brackets), default=0)


class OrganisationLimits:
    """How many requests of each expensive kind each organisation has running in this process."""

    def __init__(self, per_organisation: int) -> None:
        self.per_organisation = per_organisation
        self._running: Counter[tuple[str, str]] = Counter()

    @contextlib.contextmanager
    def slot(self, kind: str, org_id: str) -> Iterator[None]:
        key = (kind, org_id)
        if self._running[key] >= self.per_organisation:
            raise TooManyRequests(
                f"your organisation has {self.per_organisation} such requests running already: retry when one is done"
            )
        self._running[key] += 1
        try:
            yield
        finally:
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]

    def running(self, kind: str, org_id: str) -> int:
        return self._running[(kind, org_id)]


def _reaches(dependant: Any, call: Callable[..., Any]) -> bool:
    return bool(dependant.call is call) or any(_reaches(sub, call) for sub in dependant.dependencies)


def _is_json(scope: Scope) -> bool:
    headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
    if headers.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in headers:
        return False
    media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return media_type == b"application/json" or (
        media_type.startswith(b"application/") and media_type.endswith(b"+json")
    )


async def _bounded_json(scope: Scope, receive: Receive) -> Receive:
    """Read the JSON body, refuse it if it nests too deeply, and hand it on to the route as it came."""
    messages: list[Message] = []
    more = True
    while more:
        message = await receive()  # shared.server.BodyLimitMiddleware counts the bytes as they come (413)
        messages.append(message)
        more = message["type"] == "http.request" and bool(message.get("more_body"))
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    if json_depth(body) > MAX_JSON_DEPTH:
        raise ValidationFailed("body", f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    replay = iter(messages)

    async def replayed() -> Message:
        return next(replay, None) or await receive()

    return replayed


class EdgeRoute(APIRoute):
    """A route that authenticates, limits and bounds its request before FastAPI reads the body (see above).
    Errors are raised to the service's problem handlers, like any route's."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in (self.methods or ()):
            await super().handle(scope, receive, send)  # a 405: nothing of the request is read
            return
        principal = None
        if self._needs_caller():
            request = Request(scope)
            principal = await current_principal(request, await bearer_scheme(request))
        limits: OrganisationLimits | None = getattr(scope["app"].state, "organisation_limits", None)
        held = (
            limits.slot(self.path, principal.org_id)
            if limits is not None and principal is not None and self.endpoint in _EXPENSIVE
            else contextlib.nullcontext()
        )
        with held:
            if _is_json(scope):
                receive = await _bounded_json(scope, receive)
            await super().handle(scope, receive, send)

    def _needs_caller(self) -> bool:
        """Whether the route's dependencies reach `current_principal` (worked out once per route)."""
        known: bool | None = self.__dict__.get("_edge_needs_caller")
        if known is None:
            known = self.__dict__["_edge_needs_caller"] = _reaches(self.dependant, current_principal)
        return known


def adopt_edge(app: FastAPI, routers: list[APIRouter], per_organisation: int) -> None:
    """Make every route of the service's `routers` an `EdgeRoute`. The routers are built at import, before
    any app: their routes are adopted here, so no service and no new route can go without the edge."""
    app.state.organisation_limits = OrganisationLimits(per_organisation)
    for router in routers:
        for route in router.routes:
            if type(route) is APIRoute:
                route.__class__ = EdgeRoute
            if isinstance(route, APIRoute) and route.endpoint in _EXPENSIVE and 429 not in route.responses:
                route.responses[429] = problem_responses("too-many-requests")[429]  # in the OpenAPI document
