"""The AsyncAPI document of the recipient's queue (docs/asyncapi.yaml) is valid AsyncAPI 3.0 by the official
parser: run with Node.js from the TypeScript example's locked packages."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.support import needs_node, ts_example_installed
from tools.asyncapi import TARGET


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
