"""Exceptions reach the log as types and places, never as messages (which may quote a BSN)."""

import io
import json
import logging

from shared.observability import json_formatter


def test_an_exception_is_logged_without_its_message() -> None:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(json_formatter("test"))
    logger = logging.getLogger("test.safe-exceptions")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            try:
                raise ValueError("parameters: ('999999990', 'de Vries')")
            except ValueError as inner:
                raise RuntimeError("while storing 999999990") from inner
        except RuntimeError:
            logger.exception("Exception in ASGI application")
    finally:
        logger.removeHandler(handler)
    line = buffer.getvalue().strip()
    assert "999999990" not in line and "de Vries" not in line
    record = json.loads(line)
    assert "builtins.RuntimeError" in record["exception"] and "builtins.ValueError" in record["exception"]
    assert "test_logging.py" in record["exception"]
