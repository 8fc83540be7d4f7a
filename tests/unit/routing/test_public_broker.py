"""Where a recipient connects (GET /v1/deliveries/queue, GET /asyncapi.json): the broker's protocol, host, port
and virtual host from the routing service's settings — never the service's own user or password."""

from __future__ import annotations

import json

import pytest

from services.routing.api.asyncapi import asyncapi_document
from services.routing.config import PublicBroker, RoutingSettings, public_broker


@pytest.mark.parametrize(
    ("amqp_url", "expected"),
    [
        ("amqp://guest:guest@localhost:5672/", PublicBroker("amqp", "localhost", 5672, "/")),
        ("amqp://rabbit", PublicBroker("amqp", "rabbit", 5672, "/")),
        ("amqp://u:p@rabbit/%2F", PublicBroker("amqp", "rabbit", 5672, "/")),
        ("amqps://u:p@mq.example.nl/kansrijk-prod", PublicBroker("amqps", "mq.example.nl", 5671, "kansrijk-prod")),
        ("amqp://u:p@10.0.0.5:5673/team%2Fa", PublicBroker("amqp", "10.0.0.5", 5673, "team/a")),
    ],
)
def test_the_broker_is_read_from_the_amqp_url_as_the_client_reads_it(amqp_url: str, expected: PublicBroker) -> None:
    assert public_broker(amqp_url) == expected


def test_the_public_host_and_port_replace_the_internal_ones_and_no_secret_leaks() -> None:
    settings = RoutingSettings(
        amqp_url="amqp://routing:s3cret-pw@rabbitmq.internal:5672/kansrijk",
        amqp_public_host="mq.kansrijkestart.nl",
        amqp_public_port=5671,
    )
    broker = settings.public_broker()
    assert broker == PublicBroker("amqp", "mq.kansrijkestart.nl", 5671, "kansrijk")
    document = json.dumps(asyncapi_document(broker))
    server = asyncapi_document(broker)["servers"]["platform"]
    assert (server["host"], server["pathname"], server["protocol"]) == (
        "mq.kansrijkestart.nl:5671",
        "/kansrijk",
        "amqp",
    )
    assert "s3cret-pw" not in document and "routing:" not in document and "rabbitmq.internal" not in document
    # Only the host: the port stays the URL's.
    assert RoutingSettings(amqp_url="amqp://u:p@internal:5680/", amqp_public_host="mq").public_broker().port == 5680
