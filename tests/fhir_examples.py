"""The examples of docs/fhir.md, as the tests send them: as written there, their {{placeholders}} filled in."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.clock import today_nl

DOCS = Path(__file__).resolve().parents[1] / "docs" / "fhir.md"
EXAMPLE = re.compile(r"<!-- example: (?P<name>[a-z-]+) -->\s*```json\n(?P<body>.*?)\n```", re.S)
FHIR_JSON = "application/fhir+json"


def example(name: str, **values: str) -> dict[str, Any]:
    examples = {m["name"]: m["body"] for m in EXAMPLE.finditer(DOCS.read_text(encoding="utf-8"))}
    text = examples[name]
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    assert "{{" not in text, f"unfilled placeholder in the {name} example"
    return dict(json.loads(text))


def today() -> str:
    return today_nl().isoformat()


def consent_example() -> dict[str, Any]:
    return example("consent", today=today())


def melding_bundle(consent_id: str, bundle_id: str | None = None) -> dict[str, Any]:
    """The melding example: due in 160 days, under `consent_id`, with an identifier of its own (or `bundle_id`)."""
    due = (today_nl() + timedelta(days=160)).isoformat()
    return example("melding", consent_id=consent_id, due_date=due, bundle_id=bundle_id or str(uuid.uuid4()))
