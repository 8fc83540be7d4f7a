"""Intake: meldingen that arrive together are stored together (decision 1 of v1.2, `shared.batching`).

`Intake.store` takes one POST /v1/meldingen; what the EHRs sent meanwhile is stored in the same transaction,
with one statement per kind of record whatever the batch's size: the Idempotency-Keys, the consents' locks,
the patients' locks, the open meldingen of those patients, the meldingen, their history, their
`melding.accepted` events and the audit records. A batch of one is the same code. Each melding is still decided
on its own, by the rules `send_melding` always applied (`handlers.py`): a refused one stores nothing and takes
its Idempotency-Key back, while the others in its batch are stored. A batch that fails as a whole is tried
again one melding at a time (`Batcher`).
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from services.melding.domain.model import (
    AskConsentService,
    ConsentState,
    NewMelding,
    OpenAsk,
    OpenCandidate,
    SenderRef,
    open_melding_among,
)
from services.melding.service_layer.ports import MeldingTransaction, TransactionFactory
from services.melding.service_layer.views import MeldingView
from shared.auth import Principal
from shared.batching import Batcher
from shared.clock import as_nl_date, now
from shared.contracts.consent import ConsentScope
from shared.contracts.melding import MELDING_ACCEPTED, MeldingAccepted, MeldingContent, Sender
from shared.errors import ConsentRequired, DomainError, RepeatedMelding
from shared.idempotency import IdempotentRequest
from shared.messaging.topology import EVENTS_EXCHANGE
from shared.tracing import current_context

CONSENT_REFUSALS = {
    "not-found": "no consent with this id",
    # Another organisation's consent is answered exactly like a missing one: its existence is not revealed.
    "other-organisation": "no consent with this id",
    "other-patient": "the consent is for another patient",
    "withdrawn": "the consent has been withdrawn",
    "expired": "the consent has expired",
    "out-of-scope": "the consent does not cover every requested recipient type and risk domain",
}


@dataclass(frozen=True)
class Sent:
    melding: MeldingView


@dataclass(frozen=True)
class NewRequest:
    """One POST /v1/meldingen to store. `answer`: the consent service's yes, when it was asked (the melding is
    then checked only for a withdrawal since); else the check is on this service's record of consents."""

    principal: Principal
    consent_id: str
    content: MeldingContent
    request: IdempotentRequest | None
    request_id: str | None
    max_lag: timedelta
    answer: ConsentScope | None = None
    # The request's trace, for the `melding.accepted` it stages (the batch runs outside the request's span).
    trace: dict[str, str] | None = field(default_factory=current_context, compare=False)


class _Again:
    """Decided in a later batch: the Idempotency-Key was taken yet gone when read (pruned in between), or an
    earlier request of this batch has the same key."""


# What storing a melding came to: stored (or the key's first answer), withdrawn meanwhile (None), or the consent
# service must be asked; a refusal is the exception its request raises.
Stored = Sent | AskConsentService | None
_Outcome = Stored | _Again | BaseException


class Intake:
    """The melding service's intake queue: `store` waits for its melding's batch."""

    def __init__(self, unit_of_work: TransactionFactory, *, max_size: int = 50, concurrency: int = 4) -> None:
        self.unit_of_work = unit_of_work
        self._batcher: Batcher[NewRequest, Stored | _Again] = Batcher(
            partial(store_batch, unit_of_work), max_size=max_size, concurrency=concurrency, keys=_apart
        )

    @property
    def batch_sizes(self) -> Sequence[int]:
        return self._batcher.batch_sizes

    async def store(self, request: NewRequest) -> Stored:
        for _ in range(3):
            outcome = await self._batcher.submit(request)
            if not isinstance(outcome, _Again):
                return outcome
        raise RuntimeError("the Idempotency-Key was taken yet gone when read, three times")


def _apart(new: NewRequest) -> list[Hashable]:
    """Two requests with one Idempotency-Key never share a batch: the later one is answered once the earlier is
    decided (the same answer, as a retry is)."""
    return [] if new.request is None else [(new.request.org_id, new.request.key)]


async def store_batch(unit_of_work: TransactionFactory, batch: list[NewRequest]) -> list[_Outcome]:
    """Store a batch of meldingen in one transaction, each decided by the intake's rules: its Idempotency-Key,
    its consent, one open melding per patient and recipient type."""
    at = now()
    outcomes: dict[int, _Outcome] = {}
    ids = [str(uuid.uuid4()) for _ in batch]
    async with unit_of_work() as uow:
        # The keys first: a retry is answered with its first melding before anything is checked.
        keyed: dict[int, IdempotentRequest] = {}
        seen: set[tuple[str, str]] = set()  # a key twice in one batch (`Intake` never does it): the later waits
        for i, new in enumerate(batch):
            if new.request is not None:
                if (new.request.org_id, new.request.key) in seen:
                    outcomes[i] = _Again()
                else:
                    keyed[i] = new.request
                    seen.add((new.request.org_id, new.request.key))
        kept = await uow.idempotency.remember_all([(request, ids[i]) for i, request in keyed.items()])
        for i, request in keyed.items():
            if ids[i] not in kept:
                outcomes[i] = await _answer_again(uow, request)
        # Intake and a consent's withdrawal take the consent's lock in turn: either the withdrawal came first
        # and refuses the melding here, or it comes after and finds the melding committed, and withdraws it.
        states = await uow.meldingen.lock_consents({new.consent_id for i, new in enumerate(batch) if i not in outcomes})
        allowed: dict[int, ConsentScope] = {}
        for i, new in enumerate(batch):
            if i not in outcomes:
                decided = _consent(uow, states[new.consent_id], new, at)
                if isinstance(decided, ConsentScope):
                    allowed[i] = decided
                else:
                    outcomes[i] = decided
        # One organisation, one open melding per patient and recipient type (the JGZ handles one pregnancy,
        # not two cases): checked holding each organisation's lock for the patient.
        await uow.meldingen.lock_patients({(batch[i].principal.org_id, batch[i].content.patient.bsn) for i in allowed})
        asked = [OpenAsk(batch[i].principal.org_id, batch[i].content.patient.bsn, batch[i].content.recipient_types)
                 for i in allowed]  # fmt: skip
        for i, existing in zip(list(allowed), await uow.meldingen.open_meldingen_for(asked), strict=True):
            # Or an earlier melding of this batch: two sent at once for one patient are one stored and a 409.
            existing = existing or open_melding_among(
                _earlier(batch, ids, allowed, i), batch[i].content.recipient_types
            )
            if existing is not None:
                outcomes[i] = _repeated(uow, batch[i], existing)
                del allowed[i]
        for i, view in (await _add(uow, batch, ids, allowed, at)).items():
            outcomes[i] = Sent(view)
        if allowed:
            # Keys of requests that stored nothing go back, so that their retries are decided afresh.
            refused = [request for i, request in keyed.items() if ids[i] in kept and i not in allowed]
            await uow.idempotency.forget(refused)
            await uow.commit()
    return [outcomes[i] for i in range(len(batch))]


async def _answer_again(uow: MeldingTransaction, request: IdempotentRequest) -> Stored | _Again | DomainError:
    """A taken key's first answer (its melding as it reads now), or 409 for another request with that key."""
    try:
        previous = await uow.idempotency.find_previous(
            org_id=request.org_id, key=request.key, request_fingerprint=request.fingerprint
        )
    except DomainError as conflict:
        return conflict
    if previous is None:
        return _Again()
    return Sent(await read_melding(uow, previous.resource_id))


def _consent(
    uow: MeldingTransaction, state: ConsentState, new: NewRequest, at: datetime
) -> ConsentScope | AskConsentService | DomainError | None:
    """What the consent allows this melding: its scope; `AskConsentService` when the record cannot say; None when
    the consent service said yes but its withdrawal has reached this service since; a refusal (audited)."""
    if new.answer is not None:
        # The consent service said yes (so the melding's organisation is the consent's): only a withdrawal that
        # reached this service since then refuses it.
        return None if state.withdrawn_at is not None else new.answer
    # On the record, a withdrawal refuses in the rule's own order (another organisation learns nothing).
    verdict = state.verdict(
        org_id=new.principal.org_id,
        patient_ref=uow.meldingen.patient_ref(new.content.patient.bsn),
        recipient_types=list(new.content.recipient_types),
        risk_domains=list(new.content.risk_domains),
        today=as_nl_date(at),
        now=at,
        max_lag=new.max_lag,
    )
    if verdict is None:
        return state.scope()
    if isinstance(verdict, AskConsentService):
        return verdict
    outcome, bsn = f"refused:{verdict.value}", new.content.patient.bsn
    # Written in a transaction of their own once this one has ended: the refusal stores nothing of the melding.
    for action, resource_type, resource_id in (("check", "consent", state.consent_id), ("create", "melding", None)):
        uow.audit.refuse(new.principal, action, resource_type, resource_id, patient_bsn=bsn,
                         request_id=new.request_id, outcome=outcome, consent_checked=False)  # fmt: skip
    return ConsentRequired(CONSENT_REFUSALS.get(verdict.value, "the consent does not allow this melding"))


def _earlier(batch: list[NewRequest], ids: list[str], allowed: dict[int, ConsentScope], i: int) -> list[OpenCandidate]:
    """The meldingen this batch stores before the `i`th for the same organisation and patient (none delivered)."""
    org_id, bsn = batch[i].principal.org_id, batch[i].content.patient.bsn
    return [
        OpenCandidate(ids[j], batch[j].content.recipient_types, [])
        for j in allowed
        if j < i and batch[j].principal.org_id == org_id and batch[j].content.patient.bsn == bsn
    ]


def _repeated(uow: MeldingTransaction, new: NewRequest, existing: str) -> RepeatedMelding:
    uow.audit.refuse(new.principal, "create", "melding", None, patient_bsn=new.content.patient.bsn,
                     request_id=new.request_id, outcome="refused:repeated")  # fmt: skip
    return RepeatedMelding(f"/v1/meldingen/{existing}")


async def _add(
    uow: MeldingTransaction, batch: list[NewRequest], ids: list[str], allowed: dict[int, ConsentScope], at: datetime
) -> dict[int, MeldingView]:
    """The allowed meldingen, their `melding.accepted` events and their audit records: one statement each."""
    senders = {i: _sender(batch[i].principal) for i in allowed}
    added = await uow.meldingen.add_all(
        [
            NewMelding(
                ids[i],
                SenderRef(**senders[i].model_dump()),
                consent.model_dump(mode="json"),
                batch[i].content.model_dump(mode="json"),
                at,
            )
            for i, consent in allowed.items()
        ]
    )
    await uow.outbox.add_rows([_accepted(uow, batch[i], ids[i], senders[i], scope, at) for i, scope in allowed.items()])
    for i in allowed:
        new, bsn = batch[i], batch[i].content.patient.bsn
        if new.answer is None:  # the consent service audits its own check
            uow.audit.record(new.principal, "check", "consent", new.consent_id, patient_bsn=bsn,
                             request_id=new.request_id, outcome="allowed", consent_checked=True)  # fmt: skip
        uow.audit.record(new.principal, "create", "melding", ids[i], patient_bsn=bsn, request_id=new.request_id,
                         consent_checked=True)  # fmt: skip
    # As a read right after the commit shows it, without reading back what was just written.
    return {i: MeldingView(record, [], [accepted]) for i, (record, accepted) in zip(allowed, added, strict=True)}


def _sender(principal: Principal) -> Sender:
    return Sender(org_id=principal.org_id, org_type=principal.org_type, sub=principal.sub)


def _accepted(
    uow: MeldingTransaction, new: NewRequest, melding_id: str, sender: Sender, consent: ConsentScope, at: datetime
) -> dict[str, Any]:
    body = MeldingAccepted(melding_id=melding_id, accepted_at=at, sender=sender, consent=consent, content=new.content)
    return uow.outbox.row(
        exchange=EVENTS_EXCHANGE,
        routing_key=MELDING_ACCEPTED,
        message_type=MELDING_ACCEPTED,
        body=body,
        correlation_id=melding_id,
        request_id=new.request_id,
        message_id=f"accepted:{melding_id}",
        staged_in=new.trace,
    )


async def read_melding(uow: MeldingTransaction, melding_id: str) -> MeldingView:
    record = await uow.meldingen.get(melding_id)
    assert record is not None
    deliveries = await uow.meldingen.deliveries([melding_id])
    history = await uow.meldingen.history([melding_id])
    return MeldingView(record, deliveries[melding_id], history[melding_id])
