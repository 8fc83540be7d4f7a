"""The fault suite's harness: the system as separate processes, EHRs sending at a steady rate, recipients
reading every queue the way `kansrijk consume` does, and the Jepsen-style reckoning at the end.

One `FaultRun` per scenario, each in its own vhost and its own databases. The services reach RabbitMQ
through a `TcpProxy` per process, so a scenario can cut, hold, slow or reset one service's link.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import text

from shared import migrations
from shared.clock import today_nl
from shared.contracts.vocabulary import SENDER_TYPES, SOCIAL_RISK_DOMAINS
from shared.db import Database
from shared.identifiers import sample_bsns as bsns
from tests.faults import report as fault_report
from tests.faults.cluster import RabbitCluster
from tests.support import (
    AMQP_BASE,
    RunEnvironment,
    TcpProxy,
    Tokens,
    _free_port,
    create_database,
    drop_database,
)
from tools.reference_recipient import ReferenceRecipient

REPO = Path(__file__).resolve().parents[2]
RECOVERY_LIMIT_S = 60.0  # everything accepted must be delivered this long after the fault ended
WITHDRAW_SHARE = 0.03  # patients that withdraw consent right after their melding was accepted
CANCEL_SHARE = 0.03  # meldingen their sender cancels right after they were accepted (the pregnancy ended)
RETURN_SHARE = 0.02  # meldingen their JGZ returns (no capacity) and an operator routes again

ROUTE_MAP = {
    "effective_from": "2026-01-01",
    "recipients": {
        "jgz": {"risk_domains": "all", "note": True},
        "wijkteam": {"risk_domains": list(SOCIAL_RISK_DOMAINS), "note": False},
    },
}
# The directory every scenario uses: three gemeenten, a JGZ organisation for each, two wijkteams.
GEMEENTEN = {
    "GM0363": ("Amsterdam", 1011, 1109),
    "GM0599": ("Rotterdam", 3011, 3089),
    "GM0344": ("Utrecht", 3511, 3585),
}
RECIPIENTS = {
    "jgz": {"GM0363": "1", "GM0599": "2", "GM0344": "3"},
    "wijkteam": {"GM0363": "ams", "GM0599": "zuid", "GM0344": "zuid"},
}


def recipient_id(org_type: str, short: str, tag: str) -> str:
    """A JGZ's URA (8 digits, unique to this run's tag), or a wijkteam's id of the form the README documents."""
    return f"9{int(tag, 16) % 10**6:06d}{short}" if org_type == "jgz" else f"wijkteam-{short}-{tag}"


LETTERS = "ABCEGHJKLMNPRTVWXZ"  # never SA, SD or SS, which no postcode has
EHRS = SENDER_TYPES[:4]  # huisarts, verloskundige, gynaecoloog, volwassenen-ggz: one EHR each


@dataclass
class Patient:
    index: int
    bsn: str
    ehr: str  # the sender's org id
    ehr_type: str
    gemeente: str
    postcode: str
    recipient_types: list[str]
    consent_id: str = ""
    melding_id: str = ""
    accepted_at: float | None = None  # monotonic time of the 202
    attempts: int = 0
    withdraw: bool = False
    withdrawn_at: float | None = None
    cancel: bool = False
    cancelled_at: float | None = None
    give_back: bool = False  # its JGZ returns the first delivery; an operator routes it again

    @property
    def stops(self) -> bool:
        """Withdrawn or cancelled: nothing of it may be held at the end."""
        return self.withdraw or self.cancel

    @property
    def stopped(self) -> bool:
        return (self.withdrawn_at if self.withdraw else self.cancelled_at) is not None

    def expected(self, org_ids: dict[str, dict[str, str]]) -> set[str]:
        return {org_ids[t][self.gemeente] for t in self.recipient_types}


# --- processes -----------------------------------------------------------------------------------------


class ServiceProcess:
    """One `kansrijk serve` or `kansrijk worker` process, its link to RabbitMQ through its own proxy."""

    def __init__(
        self, label: str, argv: list[str], env: dict[str, str], log_path: Path, proxy: TcpProxy, port: int | None
    ) -> None:
        self.label, self.argv, self.env, self.log_path = label, argv, env, log_path
        self.proxy, self.port = proxy, port
        self.process: subprocess.Popen[bytes] | None = None
        self.exits: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *self.argv],
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.failure("exited while starting")
                if self.port is None:
                    if b"service_started" in self.log_path.read_bytes():
                        return
                else:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"{self.url}/health/live")).status_code == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(self.failure("not ready in time"))

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.exits.append(self.process.wait())

    async def terminate(self, timeout: float = 40.0) -> int:
        """SIGTERM and wait: the graceful shutdown (stop taking work, finish, flush)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
            raise AssertionError(self.failure(f"still running {timeout:.0f}s after SIGTERM"))
        self.exits.append(self.process.returncode)
        return self.process.returncode

    def failure(self, what: str) -> str:
        tail = self.log_path.read_bytes()[-3000:].decode(errors="replace") if self.log_path.exists() else ""
        return f"{self.label} {what}; the end of its log:\n{tail}"


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class Counts:
    scenario: str
    backend: str
    meldingen: int
    rate: float
    accepted: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    redelivered: int = 0
    unexpected: int = 0
    withdrawn: int = 0
    cancelled: int = 0
    returned: int = 0
    retracted: int = 0
    not_retracted: int = 0
    rejected: int = 0
    retried_posts: int = 0
    sequence_gaps: int = 0  # numbers missing from an organisation's 1..n, or never reached by its recipient
    sequence_repeats: int = 0  # a number (or message id) given twice
    gaps_filled: int = 0  # times a recipient saw a gap and fetched it (not an error: out-of-order arrival)
    queues_empty: bool = False
    outbox_empty: bool = False
    recovery_s: float = 0.0
    duration_s: float = 0.0
    fault: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return (
            self.accepted == self.meldingen
            and self.lost == 0
            and self.duplicated == 0
            and self.unexpected == 0
            and self.not_retracted == 0
            and self.rejected == 0
            and self.sequence_gaps == 0
            and self.sequence_repeats == 0
            and self.queues_empty
            and self.outbox_empty
            and self.recovery_s <= RECOVERY_LIMIT_S
        )

    def line(self) -> str:
        return (
            f"{self.scenario}: accepted={self.accepted} delivered={self.delivered} lost={self.lost} "
            f"duplicated={self.duplicated} redelivered={self.redelivered} unexpected={self.unexpected} "
            f"withdrawn={self.withdrawn} cancelled={self.cancelled} returned={self.returned} "
            f"retracted={self.retracted} "
            f"not_retracted={self.not_retracted} "
            f"rejected={self.rejected} retried_posts={self.retried_posts} sequence_gaps={self.sequence_gaps} "
            f"sequence_repeats={self.sequence_repeats} gaps_filled={self.gaps_filled} queues_empty={self.queues_empty} "
            f"outbox_empty={self.outbox_empty} recovery_s={self.recovery_s:.1f} {self.fault}"
        )


class FaultRun:
    """The system of one scenario: its vhost, databases, processes, EHRs and recipients."""

    def __init__(
        self,
        environment: RunEnvironment,
        tokens: Tokens,
        workdir: Path,
        *,
        scenario: str,
        meldingen: int,
        rate: float,
        replicas: int = 1,
        cluster: RabbitCluster | None = None,
    ) -> None:
        self.environment, self.tokens, self.workdir = environment, tokens, workdir
        self.cluster = cluster  # a RabbitMQ cluster of the suite's own instead of this machine's RabbitMQ
        self.scenario, self.meldingen, self.rate, self.replicas = scenario, meldingen, rate, replicas
        self.tag = uuid.uuid4().hex[:6]
        self.vhost = f"{environment.vhost}-fault-{self.tag}"
        self.database_urls: dict[str, str] = {}
        self.processes: dict[str, list[ServiceProcess]] = defaultdict(list)
        self.org_ids = {
            t: {g: recipient_id(t, o, self.tag) for g, o in by_gemeente.items()}
            for t, by_gemeente in RECIPIENTS.items()
        }
        self.patients: list[Patient] = []
        self.by_melding: dict[str, Patient] = {}  # the recipients' lookups: a scan per delivery is n² at 10,000
        # Fewer requests in flight than pooled connections: httpcore's pool can stall a queue of waiters.
        self.http = httpx.AsyncClient(
            timeout=15, limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)
        )
        self._in_flight = asyncio.Semaphore(64)
        self.recipients: list[ReferenceRecipient] = []
        self.seen: list[dict[str, Any]] = []  # what recipients were handed, in order
        self.redelivered = 0
        self.gaps_filled = 0
        self.sequences: tuple[int, int] = (0, 0)  # (gaps, repeats), counted at the end
        self.rejections: Counter[str] = Counter()
        self.fault_started: float | None = None
        self.fault_ended: float | None = None
        self.fault_info: dict[str, Any] = {}
        self._stop_recipients = asyncio.Event()
        self._recipient_tasks: list[asyncio.Task[int]] = []
        self._started = time.monotonic()
        self._withdrawals: set[asyncio.Task[None]] = set()
        self.returning: set[str] = set()  # meldingen whose JGZ is about to return their first delivery
        self.returned_meldingen: dict[str, str] = {}  # melding id -> the delivery its JGZ returned (confirmed)
        self.rerouted: set[str] = set()
        self._operator: asyncio.Task[None] | None = None
        self._ehr_tokens: dict[str, dict[str, str]] = {}

    # -- set-up ------------------------------------------------------------------------------------------

    @property
    def amqp_url(self) -> str:
        if self.cluster is not None:
            return self.cluster.url(self.vhost)
        return f"{AMQP_BASE}/{quote(self.vhost, safe='')}"

    def _nodes(self, index: int) -> list[str]:
        """A cluster's nodes, starting at a different one per process: connections spread over the nodes."""
        if self.cluster is None:
            return []
        addresses = self.cluster.addresses
        return [*addresses[index % len(addresses) :], *addresses[: index % len(addresses)]]

    async def _rabbitmqctl(self, *args: str) -> str:
        if self.cluster is not None:
            return await self.cluster.ctl(await self.cluster.running(), *args)
        done = await asyncio.to_thread(
            subprocess.run, ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=True
        )
        return done.stdout

    def _proxied_amqp(self, proxy: TcpProxy) -> str:
        return f"amqp://guest:guest@127.0.0.1:{proxy.port}/{quote(self.vhost, safe='')}"

    async def start(self) -> None:
        await self._rabbitmqctl("add_vhost", self.vhost)
        await self._rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        for name in ("consent", "melding", "routing"):
            url = await create_database(self.environment, name, suffix=f"_fault_{self.tag}")
            self.database_urls[name] = url
            await asyncio.to_thread(migrations.upgrade, name, url)
        for replica in range(self.replicas):
            consent = await self._spawn("consent", replica, ["serve", "consent"], http=True)
            consent_url = consent.url
            await self._spawn("melding", replica, ["serve", "melding"], http=True, consent_url=consent_url)
            await self._spawn(
                "routing", replica, ["serve", "routing", "--no-workers"], http=True, consent_url=consent_url
            )
            await self._spawn("routing-worker", replica, ["worker", "routing"], http=False, consent_url=consent_url)
        for processes in self.processes.values():
            for process in processes:
                await process.ready()
        await self._directory()
        await self._patients()
        for by_gemeente in self.org_ids.values():
            for org_id in sorted(set(by_gemeente.values())):
                self._recipient(org_id)
        await asyncio.wait_for(asyncio.gather(*(r.consuming.wait() for r in self.recipients)), timeout=60)
        self._operator = asyncio.create_task(self._operator_loop())

    async def _spawn(
        self, label: str, replica: int, argv: list[str], *, http: bool, consent_url: str | None = None
    ) -> ServiceProcess:
        proxy = TcpProxy()
        await proxy.open()
        service = argv[1]
        env = {
            "KANSRIJK_DATA_DIR": str(self.environment.data_dir),
            "KANSRIJK_AMQP_URL": self._proxied_amqp(proxy) if self.cluster is None else self.amqp_url,
            f"KANSRIJK_{service.upper()}_DATABASE_URL": self.database_urls[service],
            "KANSRIJK_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        if consent_url:
            env["KANSRIJK_CONSENT_URL"] = consent_url
        if self.cluster is not None:  # the cluster's nodes; the proxy (network faults) is not used
            env["KANSRIJK_AMQP_NODES"] = ",".join(self._nodes(sum(len(p) for p in self.processes.values())))
        if self.replicas > 1:
            # Sized as a deployment of 4 × replicas processes on one PostgreSQL (max_connections 100) must
            # be: the default 10 + 10 per process could ask for 160 at a peak, and the harness needs a few.
            env |= {"KANSRIJK_DATABASE_POOL_SIZE": "5", "KANSRIJK_DATABASE_MAX_OVERFLOW": "5"}
        port = None
        if http:
            port = _free_port()
            argv = [*argv, "--port", str(port), "--no-migrate"]
        else:
            argv = [*argv, "--no-migrate"]
        process = ServiceProcess(f"{label}[{replica}]", argv, env, self.workdir / f"{label}-{replica}.log", proxy, port)
        process.start()
        self.processes[label].append(process)
        return process

    def api(self, label: str, index: int = 0) -> str:
        group = self.processes[label]
        return group[index % len(group)].url

    async def _call(
        self, method: str, url: str, *, ok: tuple[int, ...], deadline: float = 120.0, **kwargs: Any
    ) -> httpx.Response:
        """A call an integrator would make: retried on 5xx and transport errors, never on a 4xx."""
        end = time.monotonic() + deadline
        delay = 0.2
        while True:
            try:
                response = await self.http.request(method, url, **kwargs)
                if response.status_code in ok:
                    return response
                if response.status_code < 500:
                    raise AssertionError(f"{method} {url.split('?')[0]}: {response.status_code} {response.text[:300]}")
            except httpx.TransportError:
                pass
            if time.monotonic() > end:
                raise AssertionError(f"{method} {url}: no answer within {deadline}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _directory(self) -> None:
        admin = self.tokens.bearer(org_id="ops", org_type="operator", scopes="routing:admin")
        routing = self.api("routing")
        for code, (name, low, high) in GEMEENTEN.items():
            await self._call(
                "PUT",
                f"{routing}/v1/gemeenten/{code}",
                ok=(200, 201),
                headers=admin,
                json={"name": name, "postcode_ranges": [{"from": str(low), "to": str(high)}]},
            )
            # The scenarios run with a route map loaded: the wijkteam gets the social domains (every melding
            # here carries one, so it still gets each melding addressed to it) and no note.
            await self._call(
                "PUT",
                f"{routing}/v1/gemeenten/{code}/route-map",
                ok=(200, 201),
                headers=admin,
                json=ROUTE_MAP,
            )
        for org_type, by_gemeente in self.org_ids.items():
            served: dict[str, list[str]] = defaultdict(list)
            for gemeente, org_id in by_gemeente.items():
                served[org_id].append(gemeente)
            for org_id, gemeenten in served.items():
                await self._call(
                    "PUT",
                    f"{routing}/v1/organisations/{org_id}",
                    ok=(200, 201),
                    headers=admin,
                    json={"name": f"{org_type} {org_id}", "type": org_type, "gemeenten": gemeenten, "active": True},
                )

    async def _patients(self) -> None:
        rng = random.Random(self.tag)
        codes = sorted(GEMEENTEN)
        for index, bsn in enumerate(bsns(self.meldingen, seed=int(self.tag, 16))):
            gemeente = codes[index % len(codes)]
            _, low, high = GEMEENTEN[gemeente]
            ehr_type = EHRS[index % len(EHRS)]
            self.patients.append(
                Patient(
                    index=index,
                    bsn=bsn,
                    ehr=f"ehr-{ehr_type}-{self.tag}",
                    ehr_type=ehr_type,
                    gemeente=gemeente,
                    postcode=f"{rng.randint(low, high)} {rng.choice(LETTERS)}{rng.choice(LETTERS)}",
                    recipient_types=["jgz", "wijkteam"] if index % 3 == 0 else ["jgz"],
                    withdraw=(withdraw := rng.random() < WITHDRAW_SHARE),
                    cancel=(cancel := not withdraw and rng.random() < CANCEL_SHARE),
                    give_back=not withdraw and not cancel and rng.random() < RETURN_SHARE,
                )
            )
        consent = self.api("consent")
        gate = asyncio.Semaphore(16)

        async def record(patient: Patient) -> None:
            async with gate:
                response = await self._call(
                    "POST",
                    f"{consent}/v1/consents",
                    ok=(201,),
                    headers=self._ehr(patient),
                    json={
                        "patient": {"bsn": patient.bsn},
                        "recipient_types": ["jgz", "wijkteam"],
                        "method": "verbal",
                        "given_at": (today_nl() - timedelta(days=3)).isoformat(),
                    },
                )
                patient.consent_id = response.json()["id"]

        await asyncio.gather(*(record(p) for p in self.patients))
        await self._consents_heard()

    async def _consents_heard(self, timeout: float = 300.0) -> None:
        """Until the melding service's own record holds every consent just recorded and hears the consent
        feed: the run records its consents in one burst before its first melding, which no EHR does (a consent
        is given well before her melding), and the scenarios are about the meldingen, not that burst's tail."""
        database = Database(self.database_urls["melding"])
        query = text(
            "SELECT (SELECT count(*) FROM consent_states WHERE org_id IS NOT NULL),"
            " (SELECT heard_at FROM consent_feed WHERE id = 1)"
        )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                async with database.unit_of_work() as uow:
                    known, heard_at = (await uow.session.execute(query)).one()
                if known >= len(self.patients) and heard_at is not None:
                    return
                await asyncio.sleep(0.5)
        finally:
            await database.dispose()

    def _ehr(self, patient: Patient, **extra: str) -> dict[str, str]:
        """The EHR's bearer token: one per EHR for the run, as a real integration would keep it."""
        if patient.ehr not in self._ehr_tokens:
            self._ehr_tokens[patient.ehr] = self.tokens.bearer(
                org_id=patient.ehr,
                org_type=patient.ehr_type,
                sub=f"ehr-{patient.ehr_type}",
                scopes="consent:write consent:read melding:write melding:read",
                ttl=3600,
            )
        return {**self._ehr_tokens[patient.ehr], **extra}

    def _answer_for(self, org_id: str, delivery: dict[str, Any]) -> list[dict[str, Any]]:
        """A JGZ returns the first delivery of a melding marked `give_back` (no capacity); the operator loop
        routes it again, to the same JGZ, which keeps the second."""
        patient = self.by_melding.get(delivery["melding_id"])
        if patient is None or not patient.give_back or org_id.startswith("wijkteam-"):
            return []
        if delivery["melding_id"] in self.returning:
            return []
        self.returning.add(delivery["melding_id"])  # once per melding: its second delivery is kept
        return [{"status": "returned", "reason": "no-capacity"}]

    async def _operator_loop(self) -> None:
        """What an operator does with returned meldingen: route each again (by the directory), until done."""
        admin = self.tokens.bearer(org_id="ops", org_type="operator", scopes="routing:admin", ttl=3600)
        while True:
            await asyncio.sleep(1.0)
            waiting = set(self.returned_meldingen) - self.rerouted
            if not waiting:
                continue
            try:
                listed = await self.http.get(f"{self.api('routing')}/v1/unroutable", headers=admin, timeout=10)
                returned = {i["melding_id"] for i in listed.json()["items"] if i["returned"]}
                for melding_id in waiting & returned:
                    answer = await self.http.post(
                        f"{self.api('routing')}/v1/unroutable/{melding_id}/reroute", headers=admin, timeout=20
                    )
                    if answer.status_code == 200 and answer.json()["status"] == "routed":
                        self.rerouted.add(melding_id)
            except (httpx.HTTPError, ValueError, KeyError):
                continue  # a service is away (the fault): the next round tries again

    def _recipient(self, org_id: str) -> None:
        org_type = "wijkteam" if org_id.startswith("wijkteam-") else "jgz"
        token = self.tokens.bearer(org_id=org_id, org_type=org_type, scopes="delivery:read delivery:write", ttl=3600)[
            "Authorization"
        ].split()[1]

        def show(kind: str, body: dict[str, Any]) -> None:
            if kind == "duplicate":
                self.redelivered += 1
            elif kind == "gap":
                self.gaps_filled += 1
            elif kind == "reported" and body.get("status") == "returned":
                melding_id = next(s["melding_id"] for s in self.seen if s["delivery_id"] == body["delivery_id"])
                self.returned_meldingen[melding_id] = body["delivery_id"]
            elif kind in ("delivered", "retracted"):
                self.seen.append(
                    {
                        "kind": kind,
                        "org_id": org_id,
                        "melding_id": body["melding_id"],
                        "delivery_id": body["delivery_id"],
                        "at": time.monotonic(),
                    }
                )

        recipient = ReferenceRecipient(
            amqp_url=self.amqp_url,
            org_id=org_id,
            routing_url=self.api("routing"),
            token=token,
            show=show,
            report_attempts=30,
            answer=partial(self._answer_for, org_id),
            after_sequence=0,  # a new organisation: its numbers start at 1
            amqp_nodes=self._nodes(len(self.recipients)),
        )
        self.recipients.append(recipient)
        self._recipient_tasks.append(asyncio.create_task(recipient.run(stop=self._stop_recipients)))

    # -- traffic -----------------------------------------------------------------------------------------

    async def send_all(
        self, during: Callable[[], Coroutine[Any, Any, None]] | None = None, *, fault_at: float = 0.3
    ) -> None:
        """Send every patient's melding at the steady rate; run `during` (the fault) once `fault_at` of them went."""
        tasks: list[asyncio.Task[None]] = []
        start, cpu_before = time.monotonic(), _machine_cpu()
        fault_task: asyncio.Task[None] | None = None
        for patient in self.patients:
            due = start + patient.index / self.rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(self._send(patient)))
            if during is not None and fault_task is None and patient.index >= fault_at * len(self.patients):
                fault_task = asyncio.create_task(during())
        # How busy the whole machine was while the EHRs sent: near 100 % the rate is more than it sustains,
        # and a late recovery says so rather than a defect.
        self.fault_info["cpu_busy_while_sending"] = _busy_share(cpu_before, _machine_cpu())
        # Every EHR must get its 202 within the recovery limit after the last send; a hang fails loudly.
        done, pending = await asyncio.wait(tasks, timeout=RECOVERY_LIMIT_S + 60)
        if pending:
            for task in list(pending)[:3]:
                task.print_stack()
            raise AssertionError(
                f"{len(pending)} EHR requests still unanswered {RECOVERY_LIMIT_S + 60:.0f}s after the last was sent"
            )
        for task in done:
            task.result()
        if fault_task is not None:
            await fault_task

    async def _send(self, patient: Patient) -> None:
        """One EHR's POST, retried with its Idempotency-Key until it gets an answer that is not 5xx."""
        key = str(uuid.uuid4())
        body = {
            "consent_id": patient.consent_id,
            "patient": {
                "bsn": patient.bsn,
                "name": {"given": "Test", "family": f"Patiënt {patient.index}"},
                "birth_date": "1996-05-04",
                "address": {"postcode": patient.postcode, "house_number": "7"},
            },
            "pregnancy": {"expected_due_date": (today_nl() + timedelta(days=150)).isoformat()},
            "risk_domains": ["verslaving", "financien-schulden"],
            "recipient_types": patient.recipient_types,
            "urgency": "regular",
            "note": "Fault-suite melding.",
            "contact": {"name": "Fault suite", "phone": "0201234567"},
        }
        delay = 0.2
        while True:
            patient.attempts += 1
            url = f"{self.api('melding', patient.index + patient.attempts)}/v1/meldingen"
            try:
                # An EHR's own time limit around each try: a request that hangs is a request to retry.
                async with self._in_flight:
                    response = await asyncio.wait_for(
                        self.http.post(url, json=body, headers=self._ehr(patient, **{"Idempotency-Key": key})),
                        timeout=20,
                    )
            except (httpx.TransportError, TimeoutError):
                response = None
            if response is not None and response.status_code == 202:
                patient.melding_id = response.json()["id"]
                self.by_melding[patient.melding_id] = patient
                patient.accepted_at = time.monotonic()
                if patient.stops:
                    asyncio.get_running_loop().call_later(random.random() * 2, self._stop_later, patient)
                return
            if response is not None and response.status_code < 500:
                self.rejections[f"{response.status_code} {response.headers.get('content-type', '')}"] += 1
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _stop_later(self, patient: Patient) -> None:
        task = asyncio.create_task(self._withdraw(patient) if patient.withdraw else self._cancel(patient))
        self._withdrawals.add(task)
        task.add_done_callback(self._withdrawals.discard)

    async def _cancel(self, patient: Patient) -> None:
        await self._call(
            "POST",
            f"{self.api('melding', patient.index)}/v1/meldingen/{patient.melding_id}/cancel",
            ok=(200,),
            headers=self._ehr(patient),
            json={"reason": "pregnancy-ended"},
        )
        patient.cancelled_at = time.monotonic()

    async def _withdraw(self, patient: Patient) -> None:
        await self._call(
            "POST",
            f"{self.api('consent')}/v1/consents/{patient.consent_id}/withdraw",
            ok=(200,),
            headers=self._ehr(patient),
            json={"reason": "fault suite"},
        )
        patient.withdrawn_at = time.monotonic()

    # -- faults ------------------------------------------------------------------------------------------

    def fault_begins(self, **info: Any) -> None:
        self.fault_started = time.monotonic()
        self.fault_info.update(info)

    def fault_ends(self, **info: Any) -> None:
        self.fault_ended = time.monotonic()
        self.fault_info.update(info)
        self.fault_info["fault_s"] = round(self.fault_ended - (self.fault_started or self.fault_ended), 1)

    async def restart(self, process: ServiceProcess) -> None:
        process.start()
        await process.ready()

    async def unsent(self, service: str) -> int:
        database = Database(self.database_urls[service])
        try:
            async with database.engine.connect() as connection:
                unsent: int = (
                    await connection.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
                ).scalar_one()
                return unsent
        finally:
            await database.dispose()

    async def queue_depths(self) -> dict[str, tuple[int, int, int]]:
        """Every queue of the run's vhost: (ready + unacked, unacked, consumers)."""
        output = await self._rabbitmqctl(
            "list_queues", "-p", self.vhost, "name", "messages", "messages_unacknowledged", "consumers"
        )
        depths = {}
        for line in output.splitlines():
            parts = line.split("\t")
            if len(parts) == 4 and parts[1].isdigit():
                depths[parts[0]] = (int(parts[1]), int(parts[2]), int(parts[3]))
        return depths

    # -- the reckoning -----------------------------------------------------------------------------------

    def _outcome(self) -> tuple[set[tuple[str, str]], set[str]]:
        expected: set[tuple[str, str]] = set()
        withdrawn: set[str] = set()
        for patient in self.patients:
            if not patient.melding_id:
                continue
            if patient.stops:
                withdrawn.add(patient.melding_id)
            else:
                expected.update((patient.melding_id, org) for org in patient.expected(self.org_ids))
        return expected, withdrawn

    def _kept(self, seen: dict[str, Any]) -> bool:
        """A delivery the recipient kept (not the one it returned)."""
        return seen["kind"] == "delivered" and seen["delivery_id"] not in set(self.returned_meldingen.values())

    def _settled(self) -> bool:
        expected, withdrawn = self._outcome()
        delivered = {(s["melding_id"], s["org_id"]) for s in self.seen if self._kept(s)}
        if not expected <= delivered:
            return False
        held = {m for r in self.recipients for m in r.held}
        return not (held & withdrawn) and all(p.stopped for p in self.patients if p.stops and p.melding_id)

    async def settle_and_count(self) -> Counts:
        """Wait until everything accepted arrived (or the recovery limit passed), drain, and count."""
        last_accept = max((p.accepted_at or 0.0) for p in self.patients)
        deadline = max(self.fault_ended or 0.0, last_accept) + RECOVERY_LIMIT_S
        while time.monotonic() < deadline and not self._settled():
            await asyncio.sleep(0.5)
        # Quiet: the queues drain (retractions, status events, redeliveries) and no outbox keeps anything.
        queues_empty = outbox_empty = False
        quiet_deadline = time.monotonic() + 30
        while time.monotonic() < quiet_deadline:
            await asyncio.sleep(1.0)
            depths = await self.queue_depths()
            queues_empty = all(depth[0] == 0 for depth in depths.values())
            outbox_empty = all([await self.unsent(s) == 0 for s in self.database_urls])
            # An acked message may still be in its recipient's hands (its answer posted, its number noted).
            recipients_idle = all(r.handling == 0 for r in self.recipients)
            if queues_empty and outbox_empty and recipients_idle:
                break
        self.fault_info["queues_left"] = {q: d for q, d in (await self.queue_depths()).items() if d[0]}
        failed = [repr(t.exception()) for t in self._recipient_tasks if t.done() and t.exception() is not None]
        if failed:
            self.fault_info["recipients_failed"] = failed
        self.sequences = await self._sequences()
        return self.count(queues_empty=queues_empty, outbox_empty=outbox_empty)

    async def _sequences(self) -> tuple[int, int]:
        """Per organisation, what routing numbered (GET /v1/deliveries/messages from 0) must be 1..n with
        each number and message id once, and its recipient must have reached n with nothing left above a
        gap. Returns (gaps, repeats) summed over the organisations."""
        gaps = repeats = 0
        where: dict[str, dict[str, Any]] = {}
        for recipient in self.recipients:
            items: list[dict[str, Any]] = []
            async with httpx.AsyncClient(
                base_url=recipient.routing_url, headers={"Authorization": f"Bearer {recipient.token}"}, timeout=30
            ) as http:
                after = 0
                while True:
                    page = await http.get("/v1/deliveries/messages", params={"after_sequence": after, "limit": 500})
                    page.raise_for_status()
                    if not page.json()["items"]:
                        break
                    items += page.json()["items"]
                    after = page.json()["next"]
            numbers = [i["sequence"] for i in items]
            top = max(numbers, default=0)
            missing = set(range(1, top + 1)) - set(numbers)
            unreached = top - (recipient.last_sequence or 0) + len(recipient.beyond)
            gaps += len(missing) + unreached
            if missing or unreached:  # where, for whoever reads the failure: numbers and types, nothing personal
                where[recipient.org_id] = {
                    "numbered": top,
                    "missing": sorted(missing)[:10],
                    "recipient_at": recipient.last_sequence,
                    "beyond": sorted(recipient.beyond)[:10],
                    "handling": recipient.handling,
                    "unreached": [
                        (i["sequence"], i["type"]) for i in items if i["sequence"] > (recipient.last_sequence or 0)
                    ][:10],
                }
            repeats += len(numbers) - len(set(numbers))
            repeats += len(items) - len({i["message_id"] for i in items})
        if where:
            self.fault_info["sequence_gaps"] = where
        return gaps, repeats

    def count(self, *, queues_empty: bool, outbox_empty: bool) -> Counts:
        expected, withdrawn = self._outcome()
        by_melding = {p.melding_id: p for p in self.patients if p.melding_id}
        deliveries: dict[tuple[str, str], set[str]] = defaultdict(set)
        first_seen: dict[tuple[str, str], float] = {}
        unexpected = 0
        for s in self.seen:
            pair = (s["melding_id"], s["org_id"])
            if not self._kept(s):  # a retraction, or the delivery returned (its melding went out again)
                continue
            patient = by_melding.get(s["melding_id"])
            if patient is None or s["org_id"] not in patient.expected(self.org_ids):
                unexpected += 1  # nobody sent it, or it reached an organisation that does not serve her
            deliveries[pair].add(s["delivery_id"])
            first_seen.setdefault(pair, s["at"])
        held = {m for r in self.recipients for m in r.held}
        recovery = 0.0
        if self.fault_ended is not None:
            for patient in by_melding.values():
                if patient.accepted_at is not None and patient.accepted_at <= self.fault_ended and not patient.stops:
                    for org in patient.expected(self.org_ids):
                        arrived = first_seen.get((patient.melding_id, org), float("inf"))
                        recovery = max(recovery, arrived - self.fault_ended)
        return Counts(
            scenario=self.scenario,
            backend=self.environment.backend,
            meldingen=self.meldingen,
            rate=self.rate,
            accepted=len(by_melding),
            delivered=len({d for ids in deliveries.values() for d in ids}),
            lost=len(expected - set(deliveries)),
            duplicated=sum(len(ids) - 1 for ids in deliveries.values()),
            redelivered=self.redelivered,
            unexpected=unexpected,
            withdrawn=sum(1 for p in by_melding.values() if p.withdraw),
            cancelled=sum(1 for p in by_melding.values() if p.cancel),
            returned=len(self.returned_meldingen),
            retracted=sum(1 for s in self.seen if s["kind"] == "retracted"),
            not_retracted=len(held & withdrawn),
            rejected=sum(self.rejections.values()),
            retried_posts=sum(p.attempts - 1 for p in self.patients),
            sequence_gaps=self.sequences[0],
            sequence_repeats=self.sequences[1],
            gaps_filled=self.gaps_filled,
            queues_empty=queues_empty,
            outbox_empty=outbox_empty,
            recovery_s=round(recovery, 1) if recovery != float("inf") else float("inf"),
            duration_s=round(time.monotonic() - self._started, 1),
            fault={**self.fault_info, **({"rejections": dict(self.rejections)} if self.rejections else {})},
        )

    # -- tear-down ---------------------------------------------------------------------------------------

    async def stop(self) -> dict[str, list[int]]:
        """SIGTERM every process (graceful), stop the recipients, drop the vhost and databases."""
        exits: dict[str, list[int]] = {}
        for processes in self.processes.values():
            for process in processes:
                if process.process is not None and process.process.poll() is None:
                    with contextlib.suppress(AssertionError):
                        await process.terminate()
                exits[process.label] = process.exits
                await process.proxy.close()
        self._stop_recipients.set()
        if self._operator is not None:
            self._operator.cancel()
        await asyncio.gather(*self._recipient_tasks, return_exceptions=True)
        await self.http.aclose()
        with contextlib.suppress(Exception):
            await self._rabbitmqctl("delete_vhost", self.vhost)
        for url in self.database_urls.values():
            with contextlib.suppress(Exception):
                await drop_database(self.environment, url)
        return exits


def report(counts: Counts, path: Path) -> None:
    """Print the counts, append them to the run's report and rewrite its table (tests/faults/report.py)."""
    print(("PASS " if counts.passed else "FAIL ") + counts.line())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps({**asdict(counts), "passed": counts.passed}) + "\n")
    print(f"table of the latest counts per scenario: {fault_report.write(path)}")


def _machine_cpu() -> tuple[int, int] | None:
    """The machine's busy and total CPU time since boot (Linux `/proc/stat`, in clock ticks)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def _busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] == before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 2)
