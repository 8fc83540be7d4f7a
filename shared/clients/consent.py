"""The consent service as the melding and routing services see it: `POST /v1/consents/check` over httpx."""

from __future__ import annotations

from datetime import date

import httpx
import structlog
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
    def __init__(self, base_url: str, tokens: ServiceTokens, *, timeout: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.tokens = tokens
        # A few kept connections serve a single consent process fully; httpcore looks at every pooled
        # connection on each request, so a pool as large as the caller's concurrency costs CPU per call.
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport,
                                      limits=httpx.Limits(max_connections=10, max_keepalive_connections=10))

    async def check(self, *, consent_id: str, bsn: str, org_id: str, recipient_types: list[str],
                    request_id: str | None = None) -> ConsentCheckAnswer:
        """The consent service's answer; `Unavailable` if it cannot give one (down, slow, or refusing us)."""
        headers = {"Authorization": f"Bearer {self.tokens.token()}"}
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        try:
            response = await self.http.post(
                "/v1/consents/check", headers=headers,
                json={"consent_id": consent_id, "bsn": bsn, "org_id": org_id, "recipient_types": recipient_types},
            )
        except httpx.HTTPError as exc:
            log.warning("consent_service_unreachable", error_type=type(exc).__name__)
            raise Unavailable("the consent service did not answer; retry with the same Idempotency-Key") from exc
        if response.status_code != 200:
            # 401/403 here is our misconfiguration, 5xx theirs: either way no answer about the consent.
            log.error("consent_service_refused", status=response.status_code)
            raise Unavailable("the consent service could not check the consent; retry later")
        return ConsentCheckAnswer.model_validate(response.json())

    async def aclose(self) -> None:
        await self.http.aclose()
