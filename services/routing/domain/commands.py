"""What the routing service is asked to do by a message, as the consumer edge hands it in: typed, no broker
library in sight (the worker turns a broker message into one of these; the service layer never sees one)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The headers in which the broker records a message's deaths (queue, reason, how often, when). A dead letter
# delivered again carries them unchanged; the same message dying again (replayed, failed again) carries new ones.
DEATH_HEADERS = (
    "x-death",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-first-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-last-death-exchange",
)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def death_record(headers: Mapping[str, Any]) -> str:
    """The broker's record of how a message died, as canonical text (key order and byte strings aside)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {_text(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return _text(value.isoformat() if hasattr(value, "isoformat") else value)

    return json.dumps({name: plain(headers[name]) for name in DEATH_HEADERS if name in headers}, sort_keys=True)


@dataclass(frozen=True)
class KeepDeadLetter:
    """Keep a message the broker dead-lettered, for an operator to read and replay."""

    message_id: str | None
    message_type: str | None
    correlation_id: str | None
    body: bytes
    queue: str  # where it died first
    reason: str  # why: rejected, delivery_limit, expired
    death: str  # death_record of its headers

    @classmethod
    def from_headers(
        cls,
        headers: Mapping[str, Any],
        *,
        message_id: str | None,
        message_type: str | None,
        correlation_id: str | None,
        body: bytes,
    ) -> KeepDeadLetter:
        return cls(
            message_id=message_id,
            message_type=message_type,
            correlation_id=correlation_id,
            body=body,
            queue=_text(headers.get("x-first-death-queue") or ""),
            reason=_text(headers.get("x-first-death-reason") or ""),
            death=death_record(headers),
        )

    @property
    def key(self) -> str:
        """This death of this message (64 hex characters): the same for the dead letter delivered again, another
        for the same message dead again. A message without an id is known by its body."""
        known_as = self.message_id or "sha256:" + hashlib.sha256(self.body).hexdigest()
        return hashlib.sha256(json.dumps([known_as, self.death]).encode()).hexdigest()
