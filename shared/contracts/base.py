"""The base of every request body and message schema: unknown fields refused, text that every database stores.

PostgreSQL's text holds no NUL character and its UTF-8 no unpaired surrogate (which JSON's `\\ud800` escape
makes); SQLite stores both. Refusing them here, at the edge, makes both databases answer bad input alike
— a 422 naming the field — instead of a 500 on one of them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_TEXT = "must not contain a NUL character or an unpaired surrogate"


def has_unstorable_text(value: Any) -> bool:
    """Whether a string, or any string inside a list or dict, holds a character no database here stores."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(has_unstorable_text(v) for v in value)
    if isinstance(value, dict):
        return any(has_unstorable_text(k) or has_unstorable_text(v) for k, v in value.items())
    return False


class StrictModel(BaseModel):
    """Unknown fields are a 422, and so is text holding a NUL or an unpaired surrogate, in any field."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        if has_unstorable_text(value):
            raise ValueError(UNSTORABLE_TEXT)
        return value
