"""The recipient's queue as an AsyncAPI 3.0 document, generated from the models the routing service
publishes (shared/contracts/melding.py): `GET /asyncapi.json`, and `docs/asyncapi.yaml` in the repository
(`uv run python -m tools.asyncapi` writes it; a test keeps the two equal)."""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.routing.api.schemas import DELIVERED_EXAMPLE
from services.routing.config import DEFAULT_BROKER, PublicBroker, RoutingSettings
from shared.contracts.melding import (
    MELDING_DELIVERED,
    MELDING_REMINDER,
    MELDING_RETRACTED,
    DeliveredMessage,
    DeliveredThinMessage,
    ReminderMessage,
    RetractedMessage,
)
from shared.messaging.topology import DELIVERIES_EXCHANGE

VERSION = "1.1.0"
AMQP_BINDING = "0.3.0"
DELIVERY_ID = DELIVERED_EXAMPLE["delivery_id"]
MELDING_ID = DELIVERED_EXAMPLE["melding_id"]
HEADERS_EXAMPLE = {"x-request-id": "4f1c2d7a-9e10-4b2a-8f0c-1c1e2d7a4f7e"}


def _full_example() -> dict[str, Any]:
    example = {k: v for k, v in DELIVERED_EXAMPLE.items() if k != "status"}
    return {**example, "related_deliveries": [], "sequence": 41}


# Per message: the key in the document, its AMQP `type`, the model of its payload, when it is sent, the
# message_id it carries, and an example payload.
MESSAGES: dict[str, tuple[str, type[BaseModel], str, str, dict[str, Any]]] = {
    "meldingDelivered": (
        MELDING_DELIVERED,
        DeliveredMessage,
        "A melding for your organisation (delivery mode `full`): your share of it — the risk domains the "
        "route map admits for your type, the note only where it allows.",
        "the delivery id",
        _full_example(),
    ),
    "meldingDeliveredThin": (
        MELDING_DELIVERED,
        DeliveredThinMessage,
        "A melding for your organisation (delivery mode `thin`): no personal data on the queue. Fetch the "
        "delivery from `href` on the routing service with your organisation's token.",
        "the delivery id",
        {
            "delivery_id": DELIVERY_ID,
            "melding_id": MELDING_ID,
            "sent_at": "2026-11-20T10:16:41Z",
            "recipient": {"org_id": "87654321", "type": "jgz"},
            "gemeente_code": "GM0363",
            "urgency": "regular",
            "href": f"/v1/deliveries/{DELIVERY_ID}",
            "sequence": 41,
        },
    ),
    "meldingRetracted": (
        MELDING_RETRACTED,
        RetractedMessage,
        "The patient withdrew her consent, or the sender cancelled the melding: delete what you hold of it. "
        "A cancellation says why (`pregnancy-ended`: do not visit).",
        "`retract:` and the delivery id",
        {
            "delivery_id": DELIVERY_ID,
            "melding_id": MELDING_ID,
            "reason": "cancelled-by-sender",
            "cancel_reason": "pregnancy-ended",
            "retracted_at": "2026-11-22T08:30:00Z",
            "sequence": 42,
        },
    ),
    "meldingReminder": (
        MELDING_REMINDER,
        ReminderMessage,
        "A delivery passed its contact deadline (the route map's, by urgency) without `contact_made`.",
        "`reminder-` and the delivery id",
        {
            "delivery_id": DELIVERY_ID,
            "melding_id": MELDING_ID,
            "contact_due_at": "2026-12-04T10:16:41Z",
            "sequence": 43,
        },
    ),
}

HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The AMQP headers table. The message's AMQP properties: `message_id` (see each message; the "
    "same on every redelivery: drop duplicates by it), `correlation_id` (the melding id), `type` (the message "
    "type), `content_type` `application/json`, `delivery_mode` 2 (persistent), `timestamp`, `app_id` `routing`.",
    "properties": {
        "x-request-id": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9._:-]{1,64}$",
            "description": "the request that caused the message, to quote to the platform's operators",
        },
        "traceparent": {
            "type": "string",
            "pattern": r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "W3C trace context of the melding's trace, when the platform traces (continue it in yours)",
        },
        "tracestate": {"type": "string", "description": "W3C trace state, with `traceparent`"},
    },
}


def _message(key: str) -> dict[str, Any]:
    message_type, model, summary, message_id, example = MESSAGES[key]
    return {
        "name": message_type,
        "title": model.__name__,
        "summary": summary,
        "description": f"AMQP `type` `{message_type}`, `message_id` {message_id}.",
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/MessageHeaders"},
        "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        "correlationId": {
            "description": "the melding id (AMQP `correlation_id`)",
            "location": "$message.payload#/melding_id",
        },
        "bindings": {"amqp": {"messageType": message_type, "bindingVersion": AMQP_BINDING}},
        "examples": [{"name": key, "headers": HEADERS_EXAMPLE, "payload": example}],
    }


def _schemas() -> dict[str, Any]:
    models = [(spec[1], "serialization") for spec in MESSAGES.values()]
    _, top = models_json_schema(models, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    return {**top["$defs"], "MessageHeaders": HEADERS_SCHEMA}


@cache
def asyncapi_document(broker: PublicBroker = DEFAULT_BROKER) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the recipient's queue, on `broker` (the service's: its settings'
    `amqp_public_host`/`amqp_public_port`, else its AMQP URL's; docs/asyncapi.yaml: the default)."""
    queue = f"{DELIVERIES_EXCHANGE}.{{org_id}}"
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Kansrijke Start meldingen — the recipient's queue",
            "version": VERSION,
            "description": (
                "What a JGZ organisation or wijkteam receives. Each recipient organisation has its own quorum "
                f"queue `{queue}`, bound to the direct exchange `{DELIVERIES_EXCHANGE}` with its `org_id`, "
                "declared when the organisation is registered. Messages are persistent JSON. Every message "
                "carries `sequence`, 1, 2, 3, … per organisation without gaps in the order the platform "
                "committed them (not always the order they arrive in): on a gap, fetch "
                "`GET /v1/deliveries/messages?after_sequence=<last held>` from the routing service. Drop "
                "duplicates by `message_id`; report back with `POST /v1/deliveries/{delivery_id}/status`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "platform": {
                "host": f"{broker.host}:{broker.port}",
                "pathname": "/" + quote(broker.vhost, safe=""),
                "protocol": broker.protocol,
                "protocolVersion": "0-9-1",
                "description": f"The coalition's RabbitMQ, virtual host `{broker.vhost}` (the pathname, as in "
                "an AMQP URI); `GET /v1/deliveries/queue` says the same. Your user and password come from "
                "the coalition's operators.",
            }
        },
        "channels": {
            "recipientQueue": {
                "address": queue,
                "title": "Your organisation's queue",
                "parameters": {"org_id": {"description": "your organisation's id: its URA, or wijkteam-<name>"}},
                "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in MESSAGES},
                "bindings": {
                    "amqp": {
                        "is": "queue",
                        "queue": {"name": queue, "durable": True, "exclusive": False, "autoDelete": False},
                        "bindingVersion": AMQP_BINDING,
                    }
                },
            }
        },
        "operations": {
            "receiveDeliveries": {
                "action": "receive",
                "title": "Receive your deliveries",
                "summary": "Consume with manual acknowledgement; ack once the message is stored on your side.",
                "channel": {"$ref": "#/channels/recipientQueue"},
                "messages": [{"$ref": f"#/channels/recipientQueue/messages/{key}"} for key in MESSAGES],
                "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING}},
            }
        },
        "components": {"messages": {key: _message(key) for key in MESSAGES}, "schemas": _schemas()},
    }


router = APIRouter()


@router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi_json(request: Request) -> JSONResponse:
    """The recipient's queue contract, beside `/openapi.json` (no token: it holds no data), naming the
    broker this service's recipients connect to."""
    settings: RoutingSettings = request.app.state.settings
    return JSONResponse(asyncapi_document(settings.public_broker()))
