"""The consent service as the melding and routing services see it: `POST /v1/consents/check` over httpx."""

from __future__ import annotations

from datetime import date

import aiohttp
import httpx
import structlog
from httpx_aiohttp import HttpxAiohttpClient
from pydantic import BaseModel

from shared.auth import ServiceTokens
from shared.errors import Unavailable
from shared.observability import REQUEST_ID_HEADER

log = structlog.get_logger(__name__)


class ConsentScope(BaseModel):
    id: str
    recipient_types: list[str]
    valid_until: date


class ConsentCheckAnswer(BaseModel):
    allowed: bool
    reason: str | None = None
    consent: ConsentScope | None = None


class ConsentClient:
    def __init__(
        self,
        base_url: str,
        tokens: ServiceTokens,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.tokens = tokens
        # httpx's interface, aiohttp's connection pool: the check is on every melding's path, and httpcore's
        # pool and anyio streams cost about twice the CPU per call. Errors still arrive as httpx's.
        self.http = HttpxAiohttpClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=10),
        )

    async def check(
        self, *, consent_id: str, bsn: str, org_id: str, recipient_types: list[str], request_id: str | None = None
    ) -> ConsentCheckAnswer:
        """The consent service's answer; `Unavailable` if it cannot give one (down, slow, or refusing us)."""
        headers = {"Authorization": f"Bearer {self.tokens.token()}"}
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        try:
            response = await self.http.post(
                "/v1/consents/check",
                headers=headers,
                json={"consent_id": consent_id, "bsn": bsn, "org_id": org_id, "recipient_types": recipient_types},
            )
        except (httpx.HTTPError, aiohttp.ClientError, TimeoutError) as exc:  # the transport maps most to httpx's
            log.warning("consent_service_unreachable", error_type=type(exc).__name__)
            raise Unavailable("the consent service did not answer; retry with the same Idempotency-Key") from exc
        if response.status_code != 200:
            # 401/403 here is our misconfiguration, 5xx theirs: either way no answer about the consent.
            log.error("consent_service_refused", status=response.status_code)
            raise Unavailable("the consent service could not check the consent; retry later")
        return ConsentCheckAnswer.model_validate(response.json())

    async def aclose(self) -> None:
        await self.http.aclose()
