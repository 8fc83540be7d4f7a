"""The v1 APIs as the facade calls them: with the caller's own token (each v1 service decides what the caller
may do, and audits it), its request id and trace context, and an idempotency key where one was given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from services.fhir.domain.outcome import FhirError
from shared.observability import REQUEST_ID_HEADER
from shared.tracing import inject

log = structlog.get_logger(__name__)

# The facade lets an idle connection go before the v1 services close theirs (`http_keep_alive_seconds`).
IDLE_CONNECTION_SECONDS = 2.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    is_problem: bool

    @property
    def ok(self) -> bool:
        return self.status < 400


@dataclass(frozen=True)
class Caller:
    """Who asks, as the facade passes it on: the `Authorization` header as sent, and the request id."""

    authorization: str | None
    request_id: str | None


class V1Api:
    """One v1 service (consent or melding) behind the facade."""

    def __init__(self, name: str, base_url: str, *, timeout: float, transport: httpx.AsyncBaseTransport | None = None):
        self.name = name
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_keepalive_connections=20, keepalive_expiry=IDLE_CONNECTION_SECONDS),
        )

    async def call(
        self,
        method: str,
        path: str,
        caller: Caller,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Answer:
        headers: dict[str, str] = {}
        if caller.authorization:
            headers["Authorization"] = caller.authorization
        if caller.request_id:
            headers[REQUEST_ID_HEADER] = caller.request_id
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        inject(headers)
        try:
            response = await self.http.request(method, path, json=json, params=params, headers=headers)
        except httpx.TransportError as exc:
            log.warning("v1_unreachable", service=self.name, error_type=type(exc).__name__)
            raise FhirError(
                503, "transient", f"the platform's {self.name} service cannot be reached just now: retry"
            ) from None
        media_type = response.headers.get("content-type", "").split(";")[0]
        body = response.json() if media_type.endswith("json") and response.content else None
        return Answer(response.status_code, body, media_type == "application/problem+json")

    async def aclose(self) -> None:
        await self.http.aclose()
