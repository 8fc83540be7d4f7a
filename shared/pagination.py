"""Keyset pagination: an opaque cursor naming the last item seen (its time and id), newest first."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Select, and_, or_

from shared.clock import as_utc_instant
from shared.contracts.base import has_unstorable_text
from shared.errors import ValidationFailed


def encode_cursor(at: datetime, item_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), item_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, item_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(at, str) or not isinstance(item_id, str) or len(item_id) > 64 or has_unstorable_text(item_id):
            raise TypeError("a cursor holds a time and an id")
        return as_utc_instant(datetime.fromisoformat(at)), item_id
    except (ValueError, TypeError) as exc:
        raise ValidationFailed("cursor", "not a cursor this API gave out") from exc


def newest_first(
    query: Select[Any], *, at: Column[Any], item_id: Column[Any], cursor: str | None, limit: int
) -> Select[Any]:
    """`query` ordered newest first, after `cursor`, one more than `limit` (to know if a next page exists)."""
    if cursor:
        last_at, last_id = decode_cursor(cursor)
        query = query.where(or_(at < last_at, and_(at == last_at, item_id < last_id)))
    return query.order_by(at.desc(), item_id.desc()).limit(limit + 1)
