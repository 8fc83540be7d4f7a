"""The services as the portal reads them for her: each call with a fresh short-lived token bound to her keyed BSN.

The token is made here, per call, and never leaves the server; the BSN itself never travels (the keyed hash does).
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog

from services.portal.domain.console import CONSOLE_ORG_TYPE, Staff
from shared.auth import SigningKey, issue_patient_token, issue_token
from shared.errors import NotFound, Unavailable

log = structlog.get_logger(__name__)

PATIENT_TOKEN_SECONDS = 120  # one page's calls
STAFF_TOKEN_SECONDS = 120  # one console page's calls, on her behalf


class Platform:
    def __init__(
        self,
        *,
        key: SigningKey,
        issuer: str,
        audience: str,
        urls: dict[str, str],
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.key, self.issuer, self.audience, self.urls = key, issuer, audience, urls
        self.http = httpx.AsyncClient(timeout=timeout, transport=transport)

    def _headers(self, patient_ref: str) -> dict[str, str]:
        token = issue_patient_token(
            self.key,
            issuer=self.issuer,
            audience=self.audience,
            patient_ref=patient_ref,
            ttl_seconds=PATIENT_TOKEN_SECONDS,
        )
        return {"Authorization": f"Bearer {token}"}

    async def _call(self, service: str, method: str, path: str, patient_ref: str) -> Any:
        try:
            response = await self.http.request(method, self.urls[service] + path, headers=self._headers(patient_ref))
        except httpx.HTTPError as exc:
            log.warning("service_unreachable", service=service, error_type=type(exc).__name__)
            raise Unavailable(f"the {service} service did not answer") from exc
        if response.status_code == 404:
            raise NotFound("not found for her")
        if response.status_code != 200:
            log.error("service_refused", service=service, status=response.status_code)
            raise Unavailable(f"the {service} service answered {response.status_code}")
        return response.json()

    async def consents(self, patient_ref: str) -> list[dict[str, Any]]:
        return list((await self._call("consent", "GET", "/v1/self/consents", patient_ref))["items"])

    async def meldingen(self, patient_ref: str) -> list[dict[str, Any]]:
        return list((await self._call("melding", "GET", "/v1/self/meldingen", patient_ref))["items"])

    async def access_records(self, patient_ref: str) -> tuple[list[dict[str, Any]], bool]:
        """Every service's audit records naming her, and whether each answer was complete."""
        records: list[dict[str, Any]] = []
        complete = True
        for service in ("consent", "melding", "routing"):
            answer = await self._call(service, "GET", "/v1/self/audit", patient_ref)
            records += answer["items"]
            complete = complete and bool(answer["complete"])
        return records, complete

    async def withdraw(self, patient_ref: str, consent_id: str) -> dict[str, Any]:
        path = f"/v1/self/consents/{consent_id}/withdraw"
        return dict(await self._call("consent", "POST", path, patient_ref))

    # --- the console: on a person's behalf ------------------------------------------------------------------

    def _staff_headers(self, staff: Staff) -> dict[str, str]:
        """A token naming her (`sub`) and her organisation: every audited call records her as the actor."""
        token = issue_token(
            self.key,
            issuer=self.issuer,
            audience=self.audience,
            org_id=staff.org_id,
            org_type=CONSOLE_ORG_TYPE,
            scopes=sorted(staff.scopes),
            sub=staff.sub,
            ttl_seconds=STAFF_TOKEN_SECONDS,
        )
        return {"Authorization": f"Bearer {token}"}

    async def as_staff(
        self, staff: Staff, service: str, method: str, path: str, *, json: Any = None, params: Any = None
    ) -> tuple[int, Any]:
        """The service's answer (status, JSON body) to a 2xx or 4xx; a 404 is NotFound; anything else
        Unavailable."""
        try:
            response = await self.http.request(
                method, self.urls[service] + path, headers=self._staff_headers(staff), json=json, params=params
            )
        except httpx.HTTPError as exc:
            log.warning("service_unreachable", service=service, error_type=type(exc).__name__)
            raise Unavailable(f"the {service} service did not answer") from exc
        if response.status_code == 404:
            raise NotFound("not found")
        if response.status_code >= 500 or response.status_code in (401, 403):
            log.error("service_refused", service=service, status=response.status_code)
            raise Unavailable(f"the {service} service answered {response.status_code}")
        return response.status_code, response.json() if response.content else None

    async def staff_page(self, staff: Staff, service: str, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        """A page a service renders (not JSON), read on her behalf: its status and bytes (a 4xx's problem
        document too)."""
        try:
            response = await self.http.get(self.urls[service] + path, headers=self._staff_headers(staff), params=params)
        except httpx.HTTPError as exc:
            log.warning("service_unreachable", service=service, error_type=type(exc).__name__)
            raise Unavailable(f"the {service} service did not answer") from exc
        if response.status_code >= 500 or response.status_code in (401, 403, 404):
            log.error("service_refused", service=service, status=response.status_code)
            raise Unavailable(f"the {service} service answered {response.status_code}")
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self.http.aclose()
