"""The AsyncAPI document of the recipient's queue: generated from the published models, committed as
docs/asyncapi.yaml, valid AsyncAPI 3.0 by the official parser, its examples valid against its schemas."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from services.routing.api.asyncapi import MESSAGES, asyncapi_document
from tests.support import needs_node, ts_example_installed
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


@needs_node
def test_the_official_asyncapi_parser_finds_the_document_valid(tmp_path: Path) -> None:
    example = ts_example_installed()
    checked = subprocess.run(
        ["node", "validate-asyncapi.mjs", str(TARGET)], cwd=example, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0 and "VALID: AsyncAPI 3.0.0, 4 messages" in checked.stdout, checked.stdout
    broken = tmp_path / "broken.yaml"
    document = yaml.safe_load(TARGET.read_text(encoding="utf-8"))
    del document["info"]["title"]
    broken.write_text(yaml.safe_dump(document), encoding="utf-8")
    refused = subprocess.run(
        ["node", "validate-asyncapi.mjs", str(broken)], cwd=example, capture_output=True, text=True
    )
    assert refused.returncode == 1 and "INVALID" in refused.stdout  # the check can fail
