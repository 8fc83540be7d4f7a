"""The README's shell blocks, pasted: run in order with bash against a system `kansrijk up` started here.

Every `sh` block of README.md runs, except one right after `<!-- doctest: skip -->` (those start long-running
things: `kansrijk up` itself, the demo, the test suites). The blocks run as one bash script, as one terminal
would run them one after the other (a variable set in one block is there in the next), with `set -e` and
`pipefail`: every command must exit 0, and every curl in them must fail on an HTTP error (`--fail-with-body`),
so a 4xx or 5xx fails the test with the README line it came from.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_cli import cli_env, wait_ready
from tests.support import SERVICES, RunEnvironment, _free_port, create_database, drop_database, scratch_vhost

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP = "<!-- doctest: skip -->"
UV = shutil.which("uv")


@dataclass(frozen=True)
class Block:
    line: int  # of the block's first line of code in README.md
    heading: str  # the section it is under
    code: str
    skipped: bool


def readme_blocks(text: str) -> list[Block]:
    """The `sh` blocks of a Markdown text, in order, each with its first code line, its section and whether
    the line before its fence (blank lines aside) is the skip marker."""
    lines = text.splitlines()
    blocks: list[Block] = []
    heading, index = "", 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        if line.strip() == "```sh":
            before = next((previous.strip() for previous in reversed(lines[:index]) if previous.strip()), "")
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
            code = "\n".join(lines[index + 1 : end])
            blocks.append(Block(index + 2, heading, code, before == SKIP))
            index = end
        index += 1
    return blocks


def test_readme_blocks_are_found_with_their_line_section_and_skip_marker() -> None:
    text = "# A\n\n<!-- doctest: skip -->\n```sh\nkansrijk up\n```\n\n## B\n```sh\necho one\necho two\n```\n"
    assert readme_blocks(text) == [
        Block(5, "A", "kansrijk up", skipped=True),
        Block(10, "B", "echo one\necho two", skipped=False),
    ]


def test_the_readme_keeps_its_runnable_examples_runnable_and_every_curl_fails_on_an_http_error() -> None:
    """What the next test runs cannot quietly shrink: the sections a newcomer pastes from are not skipped,
    the commands the README promises are among them, and no curl there could pass with a 4xx."""
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    runnable = [block for block in blocks if not block.skipped]
    sections = {block.heading for block in runnable}
    assert {"Try the API", "Route maps (routekaarten), for operators and coalition coordinators"} <= sections
    assert "Figures for gemeenten" in sections
    script = "\n".join(block.code for block in runnable)
    for command in ("kansrijk token", "kansrijk consume", "kansrijk directory load", "kansrijk report"):
        assert command in script, command
    for block in runnable:
        for number, line in enumerate(block.code.splitlines(), block.line):
            if re.search(r"\bcurl\b", line):
                assert "--fail-with-body" in line or re.search(r"\s-[a-zA-Z]*f", line), f"README.md:{number}"
    # The two commands and the fault suite's stay near the top, as skipped blocks.
    top = [block.code for block in blocks[:3]]
    assert any("uv run --locked kansrijk up" in code and "uv run --locked pytest" in code for code in top)
    assert any("uv run --locked pytest -m faults" in code for code in top)


def _script(blocks: list[Block]) -> tuple[str, list[int]]:
    """One bash script of the blocks, and for each of its lines the README line it came from (0: ours)."""
    lines = [
        "set -Eeuo pipefail",
        "shopt -s inherit_errexit",
        "trap 'echo \"README-FAILED script-line $LINENO: $BASH_COMMAND\" >&2' ERR",
    ]
    origin = [0] * len(lines)
    for block in blocks:
        lines.append(f"echo '--- README.md:{block.line}' >&2")
        origin.append(block.line)
        for number, line in enumerate(block.code.splitlines(), block.line):
            lines.append(line)
            origin.append(number)
    return "\n".join(lines) + "\n", origin


@pytest.mark.skipif(UV is None and not os.environ.get("CI"), reason="the README's commands call uv (pip install uv)")
async def test_the_readme_shell_blocks_run_when_pasted(environment: RunEnvironment, tmp_path: Path) -> None:
    assert UV is not None, "CI has uv (it runs the tests with it)"
    runnable = [block for block in readme_blocks(README.read_text(encoding="utf-8")) if not block.skipped]
    script, origin = _script(runnable)
    # A system of its own: its own vhost (the in-process stack of other tests must not take its messages),
    # databases, data dir (signing key) and ports; each terminal of the README has this environment.
    databases = {name: await create_database(environment, name, suffix="_readme") for name in SERVICES}
    ports = {name: _free_port() for name in SERVICES}
    try:
        async with scratch_vhost(environment, "readme") as amqp_url:
            env = cli_env(
                environment,
                KANSRIJK_AMQP_URL=amqp_url,
                KANSRIJK_DATA_DIR=str(tmp_path / "data"),
                **{f"KANSRIJK_{n.upper()}_DATABASE_URL": url for n, url in databases.items()},
                **{f"KANSRIJK_{n.upper()}_PORT": str(port) for n, port in ports.items()},
            )
            # The README is pasted in the checkout; its files (e.g. amsterdam.html) land in the working
            # directory, so that is a scratch one with the checkout's folders the README names linked in.
            work = tmp_path / "checkout"
            work.mkdir()
            (work / "services").symlink_to(ROOT / "services")
            env["UV_PROJECT"] = str(ROOT)
            log = (tmp_path / "up.log").open("wb")
            up = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "up"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                for port in ports.values():
                    await wait_ready(f"http://127.0.0.1:{port}", up)
                ran = await asyncio.to_thread(
                    subprocess.run,
                    ["bash", "-c", script],
                    env=env,
                    cwd=work,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
            finally:
                up.send_signal(signal.SIGTERM)
                await asyncio.to_thread(up.wait, 60)
                log.close()
    finally:
        for url in databases.values():
            await drop_database(environment, url)
    if ran.returncode != 0:
        failed = re.search(r"README-FAILED script-line (\d+): (.*)", ran.stderr)
        where = f"README.md:{origin[int(failed.group(1)) - 1]}: {failed.group(2)}" if failed else "?"
        system = (tmp_path / "up.log").read_text(encoding="utf-8", errors="replace")[-3000:]
        raise AssertionError(
            f"a README command failed at {where}\n{ran.stdout[-3000:]}\n{ran.stderr[-3000:]}\n`kansrijk up`:\n{system}"
        )
    # What the blocks did, seen from outside: the JGZ took the melding off its queue and reported it received,
    # the shipped CBS edition was loaded, and both report pages were written.
    assert "melding.delivered" in ran.stdout and "status received reported" in ran.stdout, ran.stdout
    assert "342 gemeenten" in ran.stderr, ran.stderr
    assert "nothing to show" in ran.stderr
    for page in ("amsterdam.html", "nederland.html"):
        assert "Bron: CBS" in (work / page).read_text(encoding="utf-8")
