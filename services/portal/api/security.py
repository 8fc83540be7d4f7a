"""The portal's defences at the edge: security headers with a strict CSP (no script at all), CSRF tokens for
every POST, and a limit on login attempts per client."""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_KEY = "csrf"


def content_security_policy(form_targets: list[str]) -> str:
    """No script of any kind, styles and images from the portal only; forms post here (a logout or login then
    continues at the provider, which `form-action` must allow for the redirect after the POST)."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'none'",
            "style-src 'self'",
            "img-src 'self'",
            "font-src 'self'",
            f"form-action 'self' {' '.join(form_targets)}".rstrip(),
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, csp: str, https: bool) -> None:
        self.app, self.csp, self.https = app, csp, https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A response that names a policy of its own keeps it (a chart image: styles, and nothing else).
                headers.setdefault("Content-Security-Policy", self.csp)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Frame-Options"] = "DENY"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                if not scope["path"].startswith("/static/"):
                    headers["Cache-Control"] = "no-store"
                if self.https:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csrf_token(session: dict[str, Any]) -> str:
    """Her session's CSRF token (made on first use); every form carries it."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = session[CSRF_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_valid(session: dict[str, Any], submitted: str | None) -> bool:
    expected = session.get(CSRF_KEY)
    return isinstance(expected, str) and isinstance(submitted, str) and hmac.compare_digest(expected, submitted)


class LoginLimiter:
    """At most `per_minute` login starts and returns per client address in a sliding minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self._seen: dict[str, deque[float]] = {}

    def allow(self, client: str) -> bool:
        now = self.clock()
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items() if v and now - v[-1] < 60}
        seen = self._seen.setdefault(client, deque())
        while seen and now - seen[0] >= 60:
            seen.popleft()
        if len(seen) >= self.per_minute:
            return False
        seen.append(now)
        return True
