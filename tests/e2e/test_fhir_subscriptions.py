"""FHIR Subscriptions (R4 Backport, rest-hook, id-only) end to end: a subscriber's endpoint — a small HTTP
server of the test's own — hears of every status change of its Tasks, in order; through an endpoint that
fails for a while, and through a FHIR facade killed with SIGKILL and started again in between; an endpoint
that never answers puts its Subscription in `error`, saying why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aio_pika
import httpx
from aiohttp import web
from fhir.resources.R4B import get_fhir_model_class

from tests.conftest import service_settings
from tests.e2e.flow import eventually, new_org_id, put_gemeente, put_organisation, recipient, sender
from tests.e2e.test_cli import ROOT, wait_ready
from tests.fhir_examples import FHIR_JSON, consent_example, example, melding_bundle
from tests.support import RunEnvironment, Tokens, _free_port, create_database, drop_database, scratch_vhost
from tools.stack import run_stack

Clients = dict[str, httpx.AsyncClient]
SENDER_URA = "10000001"


class Endpoint:
    """A subscriber's endpoint: keeps every Bundle POSTed to it; answers 500 to the first `failures`
    (all of them, with `failures=-1`)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures, self.received, self.refused = failures, list[dict[str, Any]](), 0
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/notify"
        self.headers: list[dict[str, str]] = []

    async def _take(self, request: web.Request) -> web.Response:
        bundle = await request.json()
        if self.failures == -1 or self.refused < self.failures:
            self.refused += 1
            return web.Response(status=500)
        get_fhir_model_class("Bundle").model_validate(bundle)
        self.received.append(bundle)
        self.headers.append(dict(request.headers))
        return web.Response(status=200)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Endpoint]:
        app = web.Application()
        app.router.add_post("/notify", self._take)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        try:
            yield self
        finally:
            await runner.cleanup()

    def events(self) -> list[tuple[int, str]]:
        """(event number, Task id) of every event notified, in the order they arrived."""
        return [(number, task) for number, task, _ in self.timed_events()]

    def timed_events(self) -> list[tuple[int, str, datetime]]:
        out = []
        for bundle in self.received:
            status = bundle["entry"][0]["resource"]["parameter"]
            for parameter in status:
                if parameter["name"] == "notification-event":
                    parts = {p["name"]: p for p in parameter["part"]}
                    task = parts["focus"]["valueReference"]["reference"].rsplit("/", 1)[1]
                    at = datetime.fromisoformat(parts["timestamp"]["valueInstant"].replace("Z", "+00:00"))
                    out.append((int(parts["event-number"]["valueString"]), task, at))
        return out

    def kinds(self) -> list[str]:
        return [
            next(p["valueCode"] for p in b["entry"][0]["resource"]["parameter"] if p["name"] == "type")
            for b in self.received
        ]


def subscription(endpoint: Endpoint, *, heartbeat: int | None = None) -> dict[str, Any]:
    """The Subscription of docs/fhir.md for this endpoint (without its heartbeat, unless asked)."""
    made = example("subscription", ura=SENDER_URA, endpoint=endpoint.url)
    made["channel"]["header"] = ["Authorization: Bearer secret-of-the-ehr"]
    if heartbeat:
        made["channel"]["extension"][0]["valueUnsignedInt"] = heartbeat
    else:
        del made["channel"]["extension"]
    return made


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return await client.post(path, content=json.dumps(body), headers={**headers, "Content-Type": FHIR_JSON})


async def _subscribe(fhir: httpx.AsyncClient, tokens: Tokens, endpoint: Endpoint, **options: Any) -> dict[str, Any]:
    made = await post(fhir, "/fhir/Subscription", subscription(endpoint, **options), sender(tokens))
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    get_fhir_model_class("Subscription").model_validate(body)
    assert body["status"] == "active" and "header" not in body["channel"]  # its secrets are not shown
    return body


def _more_events_than(endpoint: Any, count: int) -> bool:
    return len(endpoint.events()) > count


async def until(condition: Callable[[], bool], timeout: float) -> None:
    """Wait until `condition()` holds (fails after `timeout`)."""

    async def probe() -> bool:
        return condition()

    await eventually(probe, timeout=timeout)


async def _jgz(system: Clients, tokens: Tokens) -> str:
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    jgz = new_org_id()
    await put_organisation(system, tokens, jgz, "jgz", gemeenten=["GM0363"])
    return jgz


async def _send(system: Clients, tokens: Tokens) -> str:
    made = await post(system["fhir"], "/fhir/Consent", consent_example(), sender(tokens))
    assert made.status_code == 201, made.text
    answer = await post(system["fhir"], "/fhir", melding_bundle(made.json()["id"]), sender(tokens))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["entry"][3]["response"]["location"]).removeprefix("Task/")


async def _delivery(amqp: aio_pika.abc.AbstractChannel, jgz: str) -> str:
    queue = await amqp.get_queue(f"kansrijk.deliveries.{jgz}", ensure=False)

    async def taken() -> aio_pika.abc.AbstractIncomingMessage | None:
        return await queue.get(no_ack=True, fail=False)

    message = await eventually(taken, timeout=20)
    return str(message.message_id)


async def _report(system: Clients, tokens: Tokens, jgz: str, delivery_id: str, **body: str) -> None:
    reported = await system["routing"].post(
        f"/v1/deliveries/{delivery_id}/status", headers=recipient(tokens, jgz), json=body
    )
    assert reported.status_code == 200, reported.text


async def test_a_subscriber_hears_of_every_status_change_of_its_tasks_in_order_and_gets_heartbeats(
    system: Clients, tokens: Tokens, amqp: aio_pika.abc.AbstractChannel
) -> None:
    jgz = await _jgz(system, tokens)
    async with Endpoint().serving() as endpoint:
        made = await _subscribe(system["fhir"], tokens, endpoint, heartbeat=1)
        task_id = await _send(system, tokens)
        delivery_id = await _delivery(amqp, jgz)
        await until(lambda: len(endpoint.events()) >= 1, timeout=10)  # delivered: the Task is received
        for status in ("received", "contact_made", "closed"):
            before = len(endpoint.events())
            extra = {"outcome": "phb-done"} if status == "closed" else {}
            await _report(system, tokens, jgz, delivery_id, status=status, **extra)
            await until(partial(_more_events_than, endpoint, before), timeout=10)
        events = endpoint.events()
        assert [n for n, _ in events] == list(range(1, len(events) + 1))  # numbered, in order, none missed
        assert {t for _, t in events} == {task_id}
        assert endpoint.headers[0]["Authorization"] == "Bearer secret-of-the-ehr"
        task = await system["fhir"].get(f"/fhir/Task/{task_id}", headers=sender(tokens))
        assert task.json()["status"] == "completed"
        await until(lambda: "heartbeat" in endpoint.kinds(), timeout=10)
        read = await system["fhir"].get(f"/fhir/Subscription/{made['id']}", headers=sender(tokens))
        assert read.status_code == 200 and read.json()["status"] == "active"
        # the R4 Backport's $status, which the CapabilityStatement names, is served
        answer = await system["fhir"].get(f"/fhir/Subscription/{made['id']}/$status", headers=sender(tokens))
        assert answer.status_code == 200 and answer.json()["type"] == "searchset", answer.text
        parameters = {p["name"]: p for p in answer.json()["entry"][0]["resource"]["parameter"]}
        assert parameters["status"]["valueCode"] == "active" and parameters["type"]["valueCode"] == "query-status"
        # its criteria, run as a search by the same client, find the Task
        criteria = read.json()["criteria"]
        found = await system["fhir"].get(f"/fhir/{criteria}", headers=sender(tokens))
        assert found.status_code == 200 and task_id in found.text, found.text
        # another organisation neither reads it nor subscribes to this one's Tasks
        other = tokens.bearer(org_id=new_org_id(), org_type="verloskundige", scopes="melding:read")
        assert (await system["fhir"].get(f"/fhir/Subscription/{made['id']}", headers=other)).status_code == 404
        refused = await post(system["fhir"], "/fhir/Subscription", subscription(endpoint), other)
        assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"
        ended = await system["fhir"].delete(f"/fhir/Subscription/{made['id']}", headers=sender(tokens))
        assert ended.status_code == 204
        assert (await system["fhir"].get(f"/fhir/Subscription/{made['id']}", headers=sender(tokens))).status_code == 404


# --- a system of its own, with the facade as a process that is killed and started again ------------------


@contextlib.asynccontextmanager
async def system_with_a_facade_process(
    environment: RunEnvironment, **fhir_env: str
) -> AsyncIterator[tuple[Clients, str, FacadeProcess]]:
    names = ("consent", "melding", "routing")
    tag = f"_subs_{uuid.uuid4().hex[:6]}"
    databases = {name: await create_database(environment, name, suffix=tag) for name in (*names, "fhir")}
    ports = {name: _free_port() for name in (*names, "fhir")}
    try:
        async with scratch_vhost(environment, f"subscriptions{tag}") as amqp_url:
            consent_url = f"http://127.0.0.1:{ports['consent']}"
            settings = {
                name: service_settings(
                    environment,
                    name,
                    databases[name],
                    port=ports[name],
                    amqp_url=amqp_url,
                    **({"consent_url": consent_url} if name != "consent" else {}),
                )
                for name in names
            }
            env = {
                **os.environ,
                **environment.env(),
                "KANSRIJK_AMQP_URL": amqp_url,
                "KANSRIJK_FHIR_DATABASE_URL": databases["fhir"],
                "KANSRIJK_FHIR_PORT": str(ports["fhir"]),
                "KANSRIJK_CONSENT_URL": consent_url,
                "KANSRIJK_MELDING_URL": f"http://127.0.0.1:{ports['melding']}",
                "KANSRIJK_NOTIFICATION_POLL_SECONDS": "0.2",
                "KANSRIJK_OUTBOX_SWEEP_SECONDS": "0.2",
                **fhir_env,
            }
            facade = FacadeProcess(env, f"http://127.0.0.1:{ports['fhir']}")
            async with run_stack(settings) as urls:
                await facade.start()
                clients = {name: httpx.AsyncClient(base_url=url, timeout=15) for name, url in urls.items()}
                clients["fhir"] = httpx.AsyncClient(base_url=facade.url, timeout=15)
                try:
                    yield clients, amqp_url, facade
                finally:
                    facade.stop()
                    for client in clients.values():
                        await client.aclose()
    finally:
        for url in databases.values():
            await drop_database(environment, url)


class FacadeProcess:
    """`kansrijk serve fhir` as its own process."""

    def __init__(self, env: dict[str, str], url: str) -> None:
        self.env, self.url = env, url
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "fhir"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await wait_ready(self.url, self.process)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def test_notifications_outlive_a_failing_endpoint_and_a_killed_facade(
    environment: RunEnvironment, tokens: Tokens
) -> None:
    # What a notifier killed while sending held is sent again after its lease (30 s by default; 3 s here).
    lease = {"KANSRIJK_NOTIFICATION_LEASE_SECONDS": "3"}
    async with system_with_a_facade_process(environment, **lease) as (system, amqp_url, facade):
        jgz = await _jgz(system, tokens)
        connection = await aio_pika.connect(amqp_url)
        async with connection, Endpoint(failures=2).serving() as endpoint:
            amqp = await connection.channel()
            await _subscribe(system["fhir"], tokens, endpoint)
            task_id = await _send(system, tokens)
            delivery_id = await _delivery(amqp, jgz)
            # the endpoint refused twice; retried with backoff, the delivery's notification arrives
            await until(lambda: len(endpoint.events()) >= 1, timeout=15)
            assert endpoint.refused == 2

            facade.kill()  # SIGKILL: whatever it held in memory is gone, a notification it was sending among it
            killed_at = datetime.now(UTC)
            await _report(system, tokens, jgz, delivery_id, status="contact_made")
            await asyncio.sleep(1)  # the change waits on the facade's queue meanwhile
            await facade.start()
            # the change made while the facade was down arrives (after all that was due before it)
            await until(lambda: any(at > killed_at for _, _, at in endpoint.timed_events()), timeout=30)
            numbers = {n for n, _ in endpoint.events()}  # at least once: one sent while killed may come twice
            assert numbers == set(range(1, max(numbers) + 1)), "an event was lost"
            task = await system["fhir"].get(f"/fhir/Task/{task_id}", headers=sender(tokens))
            assert task.json()["status"] == "in-progress"


async def test_an_endpoint_that_never_answers_puts_its_subscription_in_error_saying_why(
    environment: RunEnvironment, tokens: Tokens
) -> None:
    retry = {"KANSRIJK_NOTIFICATION_RETRY_HOURS": "0.001"}  # 3.6 s for the test; 24 h by default
    async with system_with_a_facade_process(environment, **retry) as (system, amqp_url, _):
        jgz = await _jgz(system, tokens)
        connection = await aio_pika.connect(amqp_url)
        async with connection, Endpoint(failures=-1).serving() as endpoint:
            amqp = await connection.channel()
            made = await _subscribe(system["fhir"], tokens, endpoint)
            await _send(system, tokens)
            await _delivery(amqp, jgz)

            async def in_error() -> dict[str, Any] | None:
                read = await system["fhir"].get(f"/fhir/Subscription/{made['id']}", headers=sender(tokens))
                body: dict[str, Any] = read.json()
                return body if body["status"] == "error" else None

            failed = await eventually(in_error, timeout=30)
            # it says since when delivery failed, not how (that would tell a sender about the network)
            assert "could not be delivered since" in failed["error"] and "500" not in failed["error"]
            assert endpoint.refused >= 2
            get_fhir_model_class("Subscription").model_validate(failed)
            metrics = (await system["fhir"].get("/metrics")).text  # what an operator alerts on
            assert 'kansrijk_fhir_subscriptions_in_error{service="fhir"} 1.0' in metrics
            assert 'kansrijk_fhir_notifications_pending{service="fhir"} 0.0' in metrics  # not counted: given up


async def test_a_subscription_beyond_its_organisations_limit_or_with_a_header_it_may_not_set_is_a_422(
    system: Clients, tokens: Tokens
) -> None:
    endpoint = Endpoint()  # never called: nothing here is sent
    for header in ("X-A: café", "Host: intranet.local", "Transfer-Encoding: chunked", "Cookie: a=b"):
        made = subscription(endpoint)
        made["channel"]["header"] = [header]
        refused = await post(system["fhir"], "/fhir/Subscription", made, sender(tokens))
        assert refused.status_code == 422 and refused.json()["resourceType"] == "OperationOutcome", header
        assert "café" not in refused.text and "intranet" not in refused.text  # the value is not echoed
    ids = [(await _subscribe(system["fhir"], tokens, endpoint))["id"] for _ in range(10)]
    beyond = await post(system["fhir"], "/fhir/Subscription", subscription(endpoint), sender(tokens))
    assert beyond.status_code == 422 and beyond.json()["issue"][0]["code"] == "too-costly", beyond.text
    assert (await system["fhir"].delete(f"/fhir/Subscription/{ids[0]}", headers=sender(tokens))).status_code == 204
    await _subscribe(system["fhir"], tokens, endpoint)  # a place freed is a place taken
