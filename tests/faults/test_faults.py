"""The fault suite: once the platform answered 202, a melding reaches the right recipient exactly once
(as the recipient sees it), or is retracted — whatever crashes while meldingen flow.

Each scenario runs the services as separate processes (`kansrijk serve`, `kansrijk worker`), sends
`--fault-meldingen` meldingen (default 1,000) at `--fault-rate` per second from four EHRs to five
recipient organisations, injects one fault while traffic flows, and passes only with
lost = duplicated = unexpected = 0, every withdrawn melding retracted, queues and outboxes empty at
the end, and recovery within 60 s. The counts are printed and appended to `var/faults/report.jsonl`, and
the table of each scenario's latest counts is written to `var/faults/report.md` (the run prints the path).

Scenario 9 arms the melding service (KANSRIJK_FAULT_KILL_AFTER_COMMIT, development only) to kill itself
right after a COMMIT that staged a message, before its relay publishes it: the sweep must deliver it, once.

Scenarios 4 and 5 restart this machine's RabbitMQ app and PostgreSQL cluster (as the issue asks):
don't run the suite against a broker or database others are using (`-m "not faults"` leaves it out).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.faults.cluster import RabbitCluster
from tests.faults.harness import REPO, Counts, FaultRun, report
from tests.support import RunEnvironment, Tokens

pytestmark = pytest.mark.faults

REPORT = Path(os.environ.get("KANSRIJK_FAULT_REPORT", REPO / "var" / "faults" / "report.jsonl"))


@pytest.fixture
def fault_size(request: pytest.FixtureRequest) -> tuple[int, float]:
    return request.config.getoption("fault_meldingen"), request.config.getoption("fault_rate")


@pytest.fixture
async def make_run(
    environment: RunEnvironment, tokens: Tokens, tmp_path: Path, fault_size: tuple[int, float]
) -> AsyncIterator[MakeRun]:
    runs: list[FaultRun] = []

    async def make(scenario: str, *, replicas: int = 1, cluster: RabbitCluster | None = None) -> FaultRun:
        meldingen, rate = fault_size
        run = FaultRun(
            environment,
            tokens,
            tmp_path,
            scenario=scenario,
            meldingen=meldingen,
            rate=rate,
            replicas=replicas,
            cluster=cluster,
        )
        runs.append(run)
        await run.start()
        return run

    yield make
    for run in runs:
        await run.stop()


MakeRun = Callable[..., Awaitable[FaultRun]]


def check(run: FaultRun, counts: Counts) -> None:
    report(counts, REPORT)
    assert counts.passed, f"{counts.line()}\nlogs in {run.workdir}"


async def hold_then_kill(run: FaultRun, label: str, in_flight: Callable[[], Awaitable[int]]) -> None:
    """Freeze one process's link to RabbitMQ until it holds work that is done but not yet published or
    acked, then `kill -9` it there — the worst moment — and restart it."""
    process = run.processes[label][0]
    run.fault_begins()
    process.proxy.blackhole()
    held = 0
    for _ in range(100):
        await asyncio.sleep(0.1)
        if (held := await in_flight()) > 0:
            break
    process.kill9()
    process.proxy.restore()
    await run.restart(process)
    run.fault_ends(in_flight_at_kill=held)
    assert held > 0, "the kill did not find work in flight; the scenario proved nothing"


async def test_kill_9_melding_service_between_accepting_and_publishing(make_run: MakeRun) -> None:
    run = await make_run("1 kill -9 melding service")
    await run.send_all(lambda: hold_then_kill(run, "melding", lambda: run.unsent("melding")))
    check(run, await run.settle_and_count())


async def test_kill_9_routing_worker_in_the_middle_of_a_batch(make_run: MakeRun) -> None:
    run = await make_run("2 kill -9 routing worker")

    async def taken_not_acked() -> int:
        depth = (await run.queue_depths()).get("kansrijk.routing.events", (0, 0, 0))
        return depth[1] + await run.unsent("routing")

    await run.send_all(lambda: hold_then_kill(run, "routing-worker", taken_not_acked))
    check(run, await run.settle_and_count())


async def test_kill_9_consent_service_while_ehrs_retry_with_their_idempotency_key(make_run: MakeRun) -> None:
    run = await make_run("3 kill -9 consent service")

    async def fault() -> None:
        consent = run.processes["consent"][0]
        run.fault_begins()
        consent.kill9()
        await asyncio.sleep(5)
        await run.restart(consent)
        run.fault_ends()

    await run.send_all(fault)
    counts = await run.settle_and_count()
    check(run, counts)
    assert counts.retried_posts > 0, "no EHR had to retry: the consent service was never missed"


async def test_rabbitmq_restart_while_the_apis_keep_accepting(make_run: MakeRun) -> None:
    run = await make_run("4 RabbitMQ restart")

    async def fault() -> None:
        run.fault_begins()
        await asyncio.to_thread(_run, "rabbitmqctl", "-q", "stop_app")
        accepted_before = sum(1 for p in run.patients if p.accepted_at)
        await asyncio.sleep(10)
        accepted_while_down = sum(1 for p in run.patients if p.accepted_at) - accepted_before
        await asyncio.to_thread(_run, "rabbitmqctl", "-q", "start_app")
        await asyncio.to_thread(_run, "rabbitmqctl", "-q", "await_startup")
        run.fault_ends(accepted_while_broker_down=accepted_while_down)

    await run.send_all(fault)
    counts = await run.settle_and_count()
    check(run, counts)
    assert counts.fault["accepted_while_broker_down"] > 0, "the APIs stopped accepting while the broker was away"


@pytest.mark.postgres_only
async def test_postgresql_restart_immediate(make_run: MakeRun) -> None:
    run = await make_run("5 PostgreSQL restart")

    async def fault() -> None:
        run.fault_begins()
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        await asyncio.to_thread(
            _run, "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "immediate"
        )
        run.fault_ends()

    await run.send_all(fault)
    check(run, await run.settle_and_count())


async def test_network_faults_between_the_services_and_rabbitmq(make_run: MakeRun) -> None:
    run = await make_run("6 network: blackhole, latency, resets")
    proxies = [p.proxy for group in run.processes.values() for p in group]

    async def fault() -> None:
        run.fault_begins()
        for proxy in proxies:
            proxy.blackhole()
        await asyncio.sleep(10)
        for proxy in proxies:
            proxy.restore()
            proxy.latency = 0.5
        await asyncio.sleep(10)
        resets = 0
        for _ in range(3):
            for proxy in proxies:
                proxy.latency = 0.0
                resets += proxy.reset()
            await asyncio.sleep(2)
        run.fault_ends(connections_reset=resets)

    await run.send_all(fault, fault_at=0.2)
    counts = await run.settle_and_count()
    check(run, counts)
    assert counts.fault["connections_reset"] > 0


async def test_two_replicas_of_everything_with_a_rolling_restart(make_run: MakeRun) -> None:
    run = await make_run("7 two replicas, rolling SIGTERM restart", replicas=2)

    async def fault() -> None:
        run.fault_begins()
        graceful = {}
        for label in ("melding", "routing-worker", "consent", "routing"):
            process = run.processes[label][0]
            started = time.monotonic()
            code = await process.terminate()
            graceful[label] = {"exit": code, "stop_s": round(time.monotonic() - started, 1)}
            await run.restart(process)
        run.fault_ends(sigterm=graceful)
        for label, outcome in graceful.items():
            assert outcome["exit"] in (0, -15), f"{label} did not stop gracefully: {outcome}"

    await run.send_all(fault, fault_at=0.2)
    check(run, await run.settle_and_count())


async def test_kill_9_right_after_a_commit_before_its_publish_the_sweep_delivers_it_once(make_run: MakeRun) -> None:
    """The outbox hand-off's gap: the melding service committed a melding and its message, and dies (SIGKILL,
    by its own hand: KANSRIJK_FAULT_KILL_AFTER_COMMIT, development only) before its relay published it. No
    process holds the row in memory any more; the restarted service's sweep publishes it once its lease ran
    out. Restarts nothing shared (only the run's own melding process)."""
    run = await make_run("9 kill -9 after COMMIT, before the publish")

    async def fault() -> None:
        melding = run.processes["melding"][0]
        assert melding.process is not None
        run.fault_begins()
        assert await melding.terminate() in (0, -15)  # a clean stop: everything committed is published
        melding.env["KANSRIJK_FAULT_KILL_AFTER_COMMIT"] = "true"
        try:
            melding.start()  # armed: it kills itself after its first COMMIT that staged a message
            for _ in range(1200):
                if melding.process.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            if melding.process.poll() is None:
                melding.process.kill()
                melding.process.wait()
                raise AssertionError(melding.failure("armed, but no commit killed it within 120 s"))
            melding.exits.append(melding.process.returncode)
        finally:
            del melding.env["KANSRIJK_FAULT_KILL_AFTER_COMMIT"]
        unsent, leased = await run.unsent("melding"), await leased_unsent(run.database_urls["melding"])
        await run.restart(melding)
        run.fault_ends(exit_code=melding.exits[-1], unsent_at_kill=unsent, leased_unsent_at_kill=leased)

    await run.send_all(fault)
    counts = await run.settle_and_count()
    check(run, counts)
    assert counts.fault["exit_code"] == -signal.SIGKILL, "the process did not die by SIGKILL after its commit"
    # Rows committed under the dead process's lease: handed off (or claimed by its sweep) and never published.
    assert counts.fault["leased_unsent_at_kill"] > 0, "nothing leased was left unpublished: the scenario proved nothing"


async def leased_unsent(database_url: str) -> int:
    """Unsent outbox rows whose lease has not run out: held by a relay (in this scenario, a dead one)."""
    from sqlalchemy import func, select

    from services.melding.adapters.orm import outbox
    from shared.clock import now
    from shared.db import Database

    database = Database(database_url)
    try:
        async with database.engine.connect() as connection:
            query = select(func.count()).where(outbox.c.sent_at.is_(None), outbox.c.locked_until > now())
            return int((await connection.execute(query)).scalar_one())
    finally:
        await database.dispose()


def _run(*argv: str) -> None:
    executable = shutil.which(argv[0]) or argv[0]
    subprocess.run([executable, *argv[1:]], check=True, capture_output=True, timeout=120)


@pytest.fixture
async def rabbit_cluster() -> AsyncIterator[RabbitCluster]:
    """Three RabbitMQ nodes of the suite's own beside this machine's (which is left alone)."""
    workdir = Path(tempfile.mkdtemp(prefix="kansrijk-cluster-"))
    os.chmod(workdir, 0o755)  # the nodes run as the rabbitmq user
    cluster = RabbitCluster(workdir)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()


async def test_a_rabbitmq_cluster_loses_the_node_that_leads_most_queues(
    rabbit_cluster: RabbitCluster, make_run: MakeRun
) -> None:
    """Quorum queues on three nodes; the services and recipients know the node list (KANSRIJK_AMQP_NODES).
    (The cluster is asked for first, so that it is torn down after the run that uses it.)
    While traffic flows, `kill -9` of the node leading the most queues; 15 s later it is started again."""
    run = await make_run("8 RabbitMQ cluster: kill -9 of the leading node", cluster=rabbit_cluster)

    async def fault() -> None:
        leaders = await rabbit_cluster.leaders(run.vhost)
        replicated_on = await rabbit_cluster.smallest_replication(run.vhost)
        name, led = leaders.most_common(1)[0]
        node = rabbit_cluster.node(name)
        run.fault_begins()
        await rabbit_cluster.kill9(node)
        await asyncio.sleep(15)
        await rabbit_cluster.restart(node)
        run.fault_ends(killed=name, queues_it_led=led, leaders_before=dict(leaders), replicated_on=replicated_on)

    await run.send_all(fault)
    counts = await run.settle_and_count()
    check(run, counts)
    assert counts.fault["queues_it_led"] > 0, "the killed node led no queue: the scenario proved nothing"
    assert counts.fault["replicated_on"] == 3, "a quorum queue was not replicated on all three nodes"
