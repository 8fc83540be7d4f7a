"""The AsyncAPI document of the recipient's queue: generated from the published models, committed as
docs/asyncapi.yaml, its examples valid against its schemas. (That the official parser finds it valid is
checked in tests/integration/routing/test_asyncapi_parser.py: it runs Node.js.)"""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest
import yaml

from services.routing.api.asyncapi import MESSAGES, asyncapi_document
from tools.asyncapi import TARGET, render

DOCUMENT = json.loads(json.dumps(asyncapi_document()))


def payload_errors(key: str, body: dict[str, Any]) -> list[str]:
    schema = {"$ref": f"#/components/schemas/{MESSAGES[key][1].__name__}", "components": DOCUMENT["components"]}
    return [error.message for error in jsonschema_rs.validator_for(schema).iter_errors(body)]


def test_the_committed_document_is_the_one_the_code_generates() -> None:
    assert TARGET.read_text(encoding="utf-8") == render(), (
        "docs/asyncapi.yaml is stale: uv run python -m tools.asyncapi"
    )
    assert yaml.safe_load(TARGET.read_text(encoding="utf-8")) == DOCUMENT


@pytest.mark.parametrize("key", list(MESSAGES))
def test_every_message_has_a_payload_and_headers_schema_and_an_example_that_fits_them(key: str) -> None:
    message = DOCUMENT["components"]["messages"][key]
    assert message["name"] == MESSAGES[key][0] and message["payload"]["$ref"].endswith(MESSAGES[key][1].__name__)
    [example] = message["examples"]
    assert payload_errors(key, example["payload"]) == []
    headers = {"$ref": "#/components/schemas/MessageHeaders", "components": DOCUMENT["components"]}
    assert jsonschema_rs.validator_for(headers).is_valid(example["headers"])
    # The schemas say something: a message without its number, or with another message's shape, fails.
    assert payload_errors(key, {k: v for k, v in example["payload"].items() if k != "sequence"})
    others = [other for other in MESSAGES if other != key]
    assert all(payload_errors(other, example["payload"]) for other in others)


def test_thin_delivery_carries_no_personal_data_by_its_schema() -> None:
    thin = set(DOCUMENT["components"]["schemas"]["DeliveredThinMessage"]["properties"])
    assert thin.isdisjoint({"patient", "note", "risk_domains", "sender", "consent", "pregnancy", "gemeente"})
