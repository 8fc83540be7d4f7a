"""The fault suite's counts as a Markdown table: what a run measured is written beside its counts, not in docs/.

Every scenario appends its counts to `var/faults/report.jsonl` and rewrites `var/faults/report.md` (`write`),
whose path the run prints; docs/reliability.md says how to read it.

    uv run python -m tests.faults.report [var/faults/report.jsonl]   # prints the table again

Each scenario's most recent result in the file is shown, in scenario order.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = [
    "accepted",
    "delivered",
    "lost",
    "duplicated",
    "redelivered",
    "unexpected",
    "withdrawn",
    "cancelled",
    "returned",
    "retracted",
    "not_retracted",
    "retried_posts",
    "sequence_gaps",
    "gaps_filled",
    "recovery_s",
]


def table(path: Path) -> str:
    latest: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            latest[row["scenario"]] = row
    head = ["scenario", *COLUMNS, "cpu busy", "queues empty", "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in sorted(latest, key=lambda n: int(n.split()[0]) if n.split()[0].isdigit() else 99):
        row = latest[name]
        cells = [
            name,
            *(str(row.get(c, "")) for c in COLUMNS),
            _share(row.get("fault", {}).get("cpu_busy_while_sending")),
            "yes" if row["queues_empty"] and row["outbox_empty"] else "no",
            "pass" if row["passed"] else "**FAIL**",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    first = next(iter(latest.values()), {})
    lines.append("")
    lines.append(
        f"{first.get('meldingen', '?')} meldingen per scenario at {first.get('rate', '?')}/s, "
        f"database: {first.get('backend', '?')}."
    )
    return "\n".join(lines)


def write(path: Path) -> Path:
    """Write the table of the counts in `path` (JSON lines) beside it, as `<name>.md`, and return where."""
    target = path.with_suffix(".md")
    target.write_text(table(path) + "\n")
    return target


def _share(value: float | None) -> str:
    """The machine's busy share while the EHRs sent (older rows have none)."""
    return "" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "var/faults/report.jsonl")))
