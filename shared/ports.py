"""What a use case needs of the parts every service's unit of work carries — its transaction, the outbox, the
audit log — and of the consent service, written as Protocols. Each service's `service_layer/ports.py` builds
its unit of work's Protocol from these and its own repositories'; the use cases are typed against that, so the
real unit of work (`shared.db.UnitOfWork` and its parts) and a unit test's in-memory fakes
(`tests/unit/fakes.py`) both satisfy it, and mypy checks that they do. (The Idempotency-Keys' Protocol is
`shared.idempotency.KeyStore`.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol, Self, Unpack

from pydantic import BaseModel

from shared.auth import Principal
from shared.contracts.consent import ConsentCheckResult
from shared.messaging.outbox import OutboxMessage

# A hook run just before commit, as `hook(unit_of_work, key)`: the unit of work is the one it was registered on.
CommitHook = Callable[[Any, str], Awaitable[None]]


class Transaction(Protocol):
    """A unit of work: rolled back when its `async with` ends, unless `commit()` was called."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...


class HookedTransaction(Transaction, Protocol):
    """A unit of work that runs what a use case staged just before it commits (`shared.db.UnitOfWork`)."""

    def before_commit(self, key: str, hook: CommitHook, *, order: int = 0) -> None:
        """Run `hook(self, key)` once, just before the next commit (`shared.db.UnitOfWork.before_commit`)."""


class StagingOutbox(Protocol):
    """The outbox as a use case sees it (`shared.messaging.outbox.Outbox`): what is staged is published after
    the commit."""

    async def add(self, **message: Unpack[OutboxMessage]) -> str: ...

    def row(
        self,
        *,
        exchange: str,
        routing_key: str,
        message_type: str,
        body: BaseModel | dict[str, Any] | str,
        correlation_id: str | None = None,
        request_id: str | None = None,
        mandatory: bool = True,
        message_id: str | None = None,
        staged_in: dict[str, str] | None = None,
    ) -> dict[str, Any]: ...

    async def add_rows(self, rows: list[dict[str, Any]]) -> None: ...

    async def stage_again(self, *, message_id: str, **message: Any) -> str: ...


class AuditTrail(Protocol):
    """The audit log as a use case sees it (`shared.audit.AuditLog`)."""

    def record(
        self,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str | None,
        *,
        patient_bsn: str | None,
        request_id: str | None,
        outcome: str = "success",
        consent_checked: bool | None = None,
        patient_ref: str | None = None,
    ) -> None:
        """An access in this transaction: written when it commits, gone if it does not."""

    def refuse(
        self,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str | None,
        *,
        outcome: str,
        request_id: str | None,
        patient_bsn: str | None = None,
        consent_checked: bool | None = None,
    ) -> None:
        """A refused access: written in a transaction of its own once this one has ended."""


class ConsentPort(Protocol):
    """The consent service as a use case asks it (`shared.clients.consent.ConsentClient`, over HTTP)."""

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
        """Its answer for this melding's consent; `Unavailable` if it cannot give one."""

    async def patient_consent_ids(self, patient_token: str, *, request_id: str | None = None) -> list[str]:
        """The ids of her consents, asked with her own token; `Unavailable` without an answer."""
