"""The consent service as the melding and routing services see it: `POST /v1/consents/check` over httpx."""

from __future__ import annotations

import httpx
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from shared.auth import ServiceTokens
from shared.contracts.consent import ConsentCheckResult
from shared.errors import Unavailable
from shared.observability import REQUEST_ID_HEADER
from shared.tracing import inject

log = structlog.get_logger(__name__)


# The client lets an idle connection go well before the services close theirs (`http_keep_alive_seconds`,
# 5 s by default), so that it rarely reuses one the server is closing.
IDLE_CONNECTION_SECONDS = 2.0


def _closed_under_us(exc: BaseException) -> bool:
    """The server closed a reused keep-alive connection before answering (it had timed out as idle): the
    request was never processed, so asking again on a fresh connection is safe — a check changes nothing."""
    import aiohttp

    return isinstance(exc.__cause__ or exc, aiohttp.ServerDisconnectedError)


def _unanswered() -> tuple[type[BaseException], ...]:
    """What a call that got no answer raises (the transport maps most to httpx's)."""
    import aiohttp

    return (httpx.HTTPError, aiohttp.ClientError, TimeoutError)


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
        self._base_url, self._timeout, self._transport = base_url, timeout, transport
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """Built at the first call, not with the service: aiohttp's import (two SSL contexts loading the CA
        store) is a tenth of a second of CPU that `kansrijk up` to ready does not need (docs/performance.md);
        the first consent check pays it once."""
        if self._http is None:
            from httpx_aiohttp import HttpxAiohttpClient

            # httpx's interface, aiohttp's connection pool: the check is on every melding's path, and httpcore's
            # pool and anyio streams cost about twice the CPU per call. Errors still arrive as httpx's.
            self._http = HttpxAiohttpClient(
                base_url=self._base_url,
                timeout=self._timeout,
                transport=self._transport,
                limits=httpx.Limits(
                    max_connections=10, max_keepalive_connections=10, keepalive_expiry=IDLE_CONNECTION_SECONDS
                ),
            )
        return self._http

    async def check(
        self,
        *,
        consent_id: str,
        bsn: str,
        org_id: str,
        recipient_types: list[str],
        risk_domains: list[str],
        request_id: str | None = None,
    ) -> ConsentCheckResult:
        """The consent service's answer; `Unavailable` if it cannot give one (down, slow, or refusing us)."""
        headers = {"Authorization": f"Bearer {self.tokens.token()}"}
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        inject(headers)  # the consent check is part of the melding's trace
        body = {
            "consent_id": consent_id,
            "bsn": bsn,
            "org_id": org_id,
            "recipient_types": recipient_types,
            "risk_domains": risk_domains,
        }
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_closed_under_us), stop=stop_after_attempt(2), reraise=True
            ):
                with attempt:
                    response = await self.http.post("/v1/consents/check", headers=headers, json=body)
        except _unanswered() as exc:
            log.warning("consent_service_unreachable", error_type=type(exc).__name__)
            raise Unavailable("the consent service did not answer; retry with the same Idempotency-Key") from exc
        if response.status_code != 200:
            # 401/403 here is our misconfiguration, 5xx theirs: either way no answer about the consent.
            log.error("consent_service_refused", status=response.status_code)
            raise Unavailable("the consent service could not check the consent; retry later")
        return ConsentCheckResult.model_validate(response.json())

    async def patient_consent_ids(self, patient_token: str, *, request_id: str | None = None) -> list[str]:
        """The ids of every consent of the woman a `patient:self` token is bound to, asked with her own token
        (so the consent service, not the caller, decides whose they are); `Unavailable` without an answer."""
        headers = {"Authorization": f"Bearer {patient_token}"}
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        inject(headers)
        try:
            response = await self.http.get("/v1/self/consents", headers=headers)
        except _unanswered() as exc:
            log.warning("consent_service_unreachable", error_type=type(exc).__name__)
            raise Unavailable("the consent service did not answer; retry later") from exc
        if response.status_code != 200:
            log.error("consent_service_refused", status=response.status_code)
            raise Unavailable("the consent service could not list her consents; retry later")
        return [str(item["id"]) for item in response.json()["items"]]

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
