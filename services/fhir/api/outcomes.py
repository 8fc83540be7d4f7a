"""Every error under `/fhir` as an OperationOutcome: the facade's own (`FhirError`) and whatever the service
frame answers as a problem (an unknown route, a body too large, a method not allowed, an unexpected error),
with the status the problem has."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.fhir.domain.codes import FHIR_JSON
from services.fhir.domain.outcome import FhirError, from_problem
from shared.problems import PROBLEM_MEDIA_TYPE


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def fhir_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> FhirResponse:
    return FhirResponse(body, status_code=status_code, headers=headers)


def install_fhir_errors(app: FastAPI, prefix: str) -> None:
    async def on_fhir_error(_request: Request, exc: FhirError) -> FhirResponse:
        headers = {"Retry-After": "2"} if exc.status == 503 else None
        return fhir_response(exc.outcome(), exc.status, headers)

    frame_handler = app.exception_handlers[Exception]

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # An unexpected error is answered outside every middleware (Starlette's ServerErrorMiddleware): the
        # frame's handler logs it (its type only), and under the prefix its problem becomes an outcome here.
        response: Response = await frame_handler(request, exc)  # type: ignore[misc]
        if not request.url.path.startswith(prefix):
            return response
        return fhir_response(from_problem(json.loads(bytes(response.body))), response.status_code)

    app.add_exception_handler(FhirError, on_fhir_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_unexpected)
    app.add_middleware(ProblemsAsOutcomes, prefix=prefix)


class ProblemsAsOutcomes:
    """Rewrites a `problem+json` answer under `prefix` into an OperationOutcome (same status and headers)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").split(b";")[0].decode() != PROBLEM_MEDIA_TYPE:
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = json.dumps(from_problem(json.loads(b"".join(chunks)))).encode()
            kept = [
                (k, v) for k, v in start.get("headers") or [] if k.lower() not in (b"content-type", b"content-length")
            ]
            kept += [(b"content-type", FHIR_JSON.encode()), (b"content-length", str(len(body)).encode())]
            await send({**start, "headers": kept})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)
