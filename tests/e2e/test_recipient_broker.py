"""A recipient learns from the platform where to connect: `GET /v1/deliveries/queue` names the broker's host,
port and vhost, as `GET /asyncapi.json`'s server does (the routing service's settings)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import httpx

from tests.e2e.flow import new_org_id, put_organisation, recipient
from tests.support import RunEnvironment, Tokens

Clients = dict[str, httpx.AsyncClient]


async def test_the_queue_endpoint_and_the_asyncapi_server_name_the_same_broker_without_its_password(
    system: Clients, tokens: Tokens, environment: RunEnvironment
) -> None:
    org_id = new_org_id()
    await put_organisation(system, tokens, org_id, "jgz", gemeenten=[])
    answer = await system["routing"].get("/v1/deliveries/queue", headers=recipient(tokens, org_id))
    assert answer.status_code == 200, answer.text
    queue = answer.json()
    # The stack's routing service runs on this run's vhost of the local RabbitMQ (no public host set).
    run = urlsplit(environment.amqp_url)
    expected = {"protocol": "amqp", "host": run.hostname, "port": run.port or 5672, "vhost": environment.vhost}
    assert queue["broker"] == expected
    assert queue["queue"] == f"kansrijk.deliveries.{org_id}"
    server = (await system["routing"].get("/asyncapi.json")).json()["servers"]["platform"]
    assert server["host"] == f"{queue['broker']['host']}:{queue['broker']['port']}"
    assert server["pathname"] == "/" + quote(queue["broker"]["vhost"], safe="")
    assert server["protocol"] == queue["broker"]["protocol"]
    assert run.password and run.password not in answer.text and run.password not in str(server)
