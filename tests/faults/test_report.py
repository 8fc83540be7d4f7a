"""The fault suite's table is written by the run, beside its counts (not part of the `faults` marker: no fault)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.faults.report import write


def _row(scenario: str, *, accepted: int, passed: bool) -> str:
    row = {
        "scenario": scenario, "accepted": accepted, "queues_empty": True, "outbox_empty": passed,
        "passed": passed, "meldingen": 1000, "rate": 40.0, "backend": "postgresql",
        "fault": {"cpu_busy_while_sending": 0.91},
    }  # fmt: skip
    return json.dumps(row) + "\n"


def test_the_run_writes_each_scenarios_latest_counts_as_a_table_beside_them(tmp_path: Path) -> None:
    counts = tmp_path / "faults" / "report.jsonl"
    counts.parent.mkdir()
    counts.write_text(
        _row("2 kill -9 routing worker", accepted=999, passed=False)
        + _row("10 later scenario", accepted=1000, passed=True)
        + _row("2 kill -9 routing worker", accepted=1000, passed=True)
        + _row("1 kill -9 melding service", accepted=998, passed=False)
    )
    target = write(counts)
    assert target == tmp_path / "faults" / "report.md"
    lines = target.read_text().splitlines()
    rows = [line.split(" | ") for line in lines[2:5]]
    assert [r[0] for r in rows] == ["| 1 kill -9 melding service", "| 2 kill -9 routing worker", "| 10 later scenario"]
    assert [r[1] for r in rows] == ["998", "1000", "1000"]  # the latest result of scenario 2, not the first
    assert rows[0][-1] == "**FAIL** |" and rows[0][-2] == "no" and rows[1][-1] == "pass |" and rows[1][-3] == "91%"
    assert lines[-1] == "1000 meldingen per scenario at 40.0/s, database: postgresql."
