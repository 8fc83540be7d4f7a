"""Every log line the services emit during the end-to-end tests is checked for personal data."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest

from tests.support import RunEnvironment, _free_port

# The personal data the end-to-end tests send (tests/e2e/flow.py), and what a postcode with a house number
# looks like in any spelling.
PERSONAL = (
    "999999990",
    "123456782",
    "Sanne",
    "de Vries",
    "1998-03-14",
    "methadon",
    "schuldeisers",
    "M. Jansen",
    "0201234567",
)
POSTCODE_WITH_NUMBER = re.compile(r"\b[1-9]\d{3}\s?[A-Za-z]{2}\W{1,3}\d{1,5}\b")


def personal_data_in(line: str) -> list[str]:
    found = [value for value in PERSONAL if value in line]
    return found + POSTCODE_WITH_NUMBER.findall(line)


def emitted(record: logging.LogRecord) -> str:
    """The message as it was written: rendered when it was emitted (pytest's handler formats every record),
    not again now. Its arguments may no longer render: aio-pika logs "Callback %r error" and then deletes
    the callback that `%r` shows, so a second rendering raises AttributeError."""
    message = getattr(record, "message", None)
    return message if isinstance(message, str) else record.getMessage()


@pytest.fixture(autouse=True)
def no_personal_data_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield  # at the level the services log at (INFO, as in production)
    for when in ("setup", "call"):
        for record in caplog.get_records(when):
            line = f"{emitted(record)} {record.exc_text or ''}"
            assert not personal_data_in(line), f"personal data in a log line: {line[:300]}"


@pytest.fixture
async def amqp(environment: RunEnvironment) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A channel on this run's vhost, read as a recipient's consumer would."""
    connection = await aio_pika.connect_robust(environment.amqp_url)
    yield await connection.channel()
    await connection.close()


# --- a browser for the portal's and the console's pages ---------------------------------------------------------

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")


@pytest.fixture
def chromium_path() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing: CI must drive the portal in a browser (.ci/run installs it)")
        pytest.skip("needs Chromium (apt-get install -y chromium)")
    return CHROMIUM


# --- the portal (her own view), served for real beside the stack, with the embedded login provider ---------------


@pytest.fixture(scope="session")
def login_provider() -> Iterator[str]:
    from tools.oidc_provider import running_provider

    with running_provider(port=_free_port()) as issuer:
        yield issuer


@pytest.fixture(scope="session")
async def portal(stack: dict[str, str], environment: RunEnvironment, login_provider: str) -> AsyncIterator[str]:
    """The portal's base URL: its services are the stack's, its provider the embedded one."""
    from services.registry import WEB
    from shared.server import server_config
    from tools.stack import _Server

    entry = WEB["portal"]
    settings = entry.settings(
        data_dir=environment.data_dir,
        port=_free_port(),
        oidc_issuer=login_provider,
        console_oidc_issuer=login_provider,
        consent_url=stack["consent"],
        melding_url=stack["melding"],
        routing_url=stack["routing"],
        login_attempts_per_minute=1000,  # every test logs in from 127.0.0.1: the limit has its own unit test
    )
    server = _Server(server_config(entry.app_factory()(settings, configure_logs=False), settings))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    yield settings.public_url
    server.should_exit = True
    await task
