"""Her session, kept on the server: the browser holds only a random id in an HttpOnly cookie.

Nothing personal is kept beyond what the session needs (the keyed hash of her BSN, the ID token for logging out at
the provider, the CSRF token); a session unused for `idle_seconds` is gone. One portal process keeps its sessions in
memory: a restart logs everyone out, which is the safe side.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "kansrijk_sessie"
ROTATE = "_rotate"  # set by a route after login: the session gets a new id (no fixation)
MAX_SESSIONS = 100_000


class SessionStore:
    def __init__(self, idle_seconds: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds, self.clock = idle_seconds, clock
        self._sessions: dict[str, tuple[dict[str, Any], float]] = {}

    def load(self, session_id: str | None) -> dict[str, Any] | None:
        if not session_id or session_id not in self._sessions:
            return None
        data, last_seen = self._sessions[session_id]
        if self.clock() - last_seen > self.idle_seconds:
            del self._sessions[session_id]
            return None
        return data

    def save(self, session_id: str, data: dict[str, Any]) -> None:
        if len(self._sessions) >= MAX_SESSIONS:
            self._sweep()
        self._sessions[session_id] = (data, self.clock())

    def drop(self, session_id: str | None) -> None:
        self._sessions.pop(session_id or "", None)

    def _sweep(self) -> None:
        """Forget idle sessions; if the store is still full, the least recently used (a flood of logins
        started and never finished must not grow the portal's memory without end)."""
        now = self.clock()
        for session_id, (_, last_seen) in list(self._sessions.items()):
            if now - last_seen > self.idle_seconds:
                del self._sessions[session_id]
        if len(self._sessions) >= MAX_SESSIONS:
            by_age = sorted(self._sessions, key=lambda session_id: self._sessions[session_id][1])
            for session_id in by_age[: len(by_age) // 10 or 1]:
                del self._sessions[session_id]


class SessionMiddleware:
    """`request.session` from the server-side store; the cookie is HttpOnly, SameSite=Lax and (outside
    development) Secure."""

    def __init__(self, app: ASGIApp, store: SessionStore, *, secure: bool) -> None:
        self.app, self.store, self.secure = app, store, secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        old_id = HTTPConnection(scope).cookies.get(COOKIE)
        loaded = self.store.load(old_id)
        session: dict[str, Any] = dict(loaded) if loaded is not None else {}
        scope["session"] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                new_id = old_id if loaded is not None else None
                if session.pop(ROTATE, False) and new_id is not None:
                    self.store.drop(new_id)
                    new_id = None
                if session:
                    new_id = new_id or secrets.token_urlsafe(32)
                    self.store.save(new_id, session)
                    headers.append("Set-Cookie", self._cookie(new_id, None))
                else:
                    self.store.drop(old_id)
                    if old_id:
                        headers.append("Set-Cookie", self._cookie("", 0))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _cookie(self, value: str, max_age: int | None) -> str:
        parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)
