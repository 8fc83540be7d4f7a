"""In-memory stand-ins for what every service's unit of work carries (cosmicpython's fakes): the outbox,
the audit log and the Idempotency-Keys. Each service's fake unit of work adds its own repositories."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel

from shared.auth import Principal
from shared.contracts.consent import ConsentCheckResult
from shared.errors import IdempotencyConflict
from shared.idempotency import IdempotentRequest, StoredResponse


@dataclass
class StagedMessage:
    routing_key: str
    message_type: str
    body: dict[str, Any]
    message_id: str | None
    exchange: str


class FakeOutbox:
    def __init__(self) -> None:
        self.messages: list[StagedMessage] = []

    async def add(self, *, exchange: str, routing_key: str, message_type: str, body: Any, **rest: Any) -> str:
        document = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
        self.messages.append(StagedMessage(routing_key, message_type, document, rest.get("message_id"), exchange))
        return rest.get("message_id") or f"message-{len(self.messages)}"

    def row(self, **message: Any) -> dict[str, Any]:
        return message

    async def add_rows(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            await self.add(**row)

    async def stage_again(self, *, message_id: str, **message: Any) -> str:
        self.messages = [m for m in self.messages if m.message_id != message_id]
        return await self.add(message_id=message_id, **message)

    def of_type(self, message_type: str) -> list[StagedMessage]:
        return [m for m in self.messages if m.message_type == message_type]


@dataclass
class AuditEntry:
    actor: Principal
    action: str
    resource_type: str
    resource_id: str | None
    patient_bsn: str | None
    outcome: str
    consent_checked: bool | None
    refused: bool


@dataclass
class FakeAudit:
    records: list[AuditEntry] = field(default_factory=list)

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
        self.records.append(
            AuditEntry(principal, action, resource_type, resource_id, patient_bsn, outcome, consent_checked, False)
        )

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
        self.records.append(
            AuditEntry(principal, action, resource_type, resource_id, patient_bsn, outcome, consent_checked, True)
        )


class FakeIdempotencyKeys:
    """Keys remembered in a transaction count once it commits; one that ends without a commit forgets them, as
    a rollback would (a create that stored nothing must not leave its key)."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], tuple[str, StoredResponse]] = {}
        self.pending: dict[tuple[str, str], tuple[str, StoredResponse]] = {}

    async def find_previous(self, *, org_id: str, key: str, request_fingerprint: str) -> StoredResponse | None:
        found = self.pending.get((org_id, key)) or self.keys.get((org_id, key))
        if found is None:
            return None
        if found[0] != request_fingerprint:
            raise IdempotencyConflict("this Idempotency-Key was used before with a different request")
        return found[1]

    async def remember(
        self, *, org_id: str, key: str, request_fingerprint: str, status_code: int, resource_id: str
    ) -> bool:
        if (org_id, key) in self.pending or (org_id, key) in self.keys:
            return False
        self.pending[(org_id, key)] = (request_fingerprint, StoredResponse(status_code, resource_id))
        return True

    async def remember_all(self, requests: Sequence[tuple[IdempotentRequest, str]]) -> set[str]:
        return {
            resource_id
            for request, resource_id in requests
            if await self.remember(
                org_id=request.org_id,
                key=request.key,
                request_fingerprint=request.fingerprint,
                status_code=request.status_code,
                resource_id=resource_id,
            )
        }

    async def forget(self, requests: Sequence[IdempotentRequest]) -> None:
        for request in requests:
            self.pending.pop((request.org_id, request.key), None)


class FakeUnitOfWorkBase:
    """Counts commits; what a use case wrote lives in the fakes it carries, shared across its transactions
    (each `async with` of the factory opens the same store, as a database would)."""

    def __init__(self) -> None:
        self.outbox = FakeOutbox()
        self.audit = FakeAudit()
        self.idempotency = FakeIdempotencyKeys()
        self.commits = 0
        self._before_commit: dict[str, Any] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.idempotency.pending.clear()

    def before_commit(self, key: str, hook: Any, *, order: int = 0) -> None:
        self._before_commit.setdefault(key, hook)

    async def commit(self) -> None:
        hooks, self._before_commit = self._before_commit, {}
        for key, hook in hooks.items():
            await hook(self, key)
        self.idempotency.keys.update(self.idempotency.pending)
        self.idempotency.pending.clear()
        self.commits += 1

    def __call__(self) -> Self:  # the unit of work is its own factory: every transaction sees one store
        return self


class FakeConsentClient:
    """Answers every check as told, and counts the checks."""

    def __init__(self, answer: ConsentCheckResult) -> None:
        self.answer, self.checks = answer, 0

    async def check(self, **_: Any) -> ConsentCheckResult:
        self.checks += 1
        return self.answer

    async def patient_consent_ids(self, patient_token: str, *, request_id: str | None = None) -> list[str]:
        return []  # her own view reads through the real repository only (FullMeldingTransaction)


def principal(org_id: str = "10000001", org_type: str = "verloskundige") -> Principal:
    return Principal(sub="m.jansen", org_id=org_id, org_type=org_type, scopes=frozenset())
