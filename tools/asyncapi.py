"""Write docs/asyncapi.yaml from the code: `uv run python -m tools.asyncapi` (a test keeps it current)."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.routing.api.asyncapi import asyncapi_document

TARGET = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"
HEADER = "# Generated from the routing service's models by `uv run python -m tools.asyncapi`: do not edit.\n"


def render() -> str:
    text: str = yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True, width=110)
    return HEADER + text


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
