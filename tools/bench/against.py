"""`kansrijk bench --against REF`: that commit benched first, then the work tree, in one run on one machine.

The reference is installed as it was (`git worktree add --detach` in a scratch folder, its own `uv sync
--locked` venv) and measured with its own `kansrijk bench`, the same options; then the work tree is measured.
The comparison (`comparison_rows`, `ratio_verdicts`) is pure: both columns and work tree ÷ reference, with the
issue's targets that are ratios (`RATIO_TARGETS`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# figure: (comparison, limit) of work tree ÷ reference (issue 29: measured back to back on one machine).
RATIO_TARGETS = {
    "throughput_per_s": (">=", 4.0),
    "cpu_ms_per_melding_total": ("<=", 0.25),
}

# What the comparison shows, in order: (figure, label, format of a value).
COMPARED = (
    ("throughput_per_s", "end-to-end throughput (meldingen/s)", "{:.1f}"),
    ("cpu_ms_per_melding_total", "CPU per melding, the services summed (ms)", "{:.1f}"),
    ("api_p50_ms", "API latency p50 at half load (ms)", "{:.1f}"),
    ("api_p99_ms", "API latency p99 at half load (ms)", "{:.1f}"),
    ("e2e_p50_ms", "end-to-end latency p50 at --rate (ms)", "{:.1f}"),
    ("e2e_p99_ms", "end-to-end latency p99 at --rate (ms)", "{:.1f}"),
    ("idle_cpu_max_percent", "idle CPU, the busiest service (% of a core)", "{:.2f}"),
    ("start_up_s", "`kansrijk up` to ready (s)", "{:.1f}"),
    ("peak_memory_mb", "peak resident memory, the largest service (MB)", "{:.0f}"),
    ("b_api_per_s", "B_api (requests/s)", "{:.0f}"),
    ("b_pg_per_s", "B_pg (inserts/s)", "{:.0f}"),
    ("b_mq_per_s", "B_mq (publishes/s)", "{:.0f}"),
)


def ratio(ours: float | None, reference: float | None) -> float | None:
    """Work tree ÷ reference; None when either is missing or the reference is 0."""
    if ours is None or reference is None or reference == 0:
        return None
    return ours / reference


def ratio_verdicts(ours: dict[str, Any], reference: dict[str, Any]) -> dict[str, bool]:
    """Each ratio target met (True) or missed (False); a figure missing on either side is a miss."""
    out = {}
    for name, (comparison, limit) in RATIO_TARGETS.items():
        value = ratio(ours.get(name), reference.get(name))
        out[f"{name}_vs_reference"] = value is not None and (value >= limit if comparison == ">=" else value <= limit)
    return out


def comparison_rows(ours: dict[str, Any], reference: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(figure, reference, work tree, work tree ÷ reference, ratio target and verdict) for the printed table."""
    verdicts = ratio_verdicts(ours, reference)
    rows = []
    for name, label, form in COMPARED:
        theirs, mine = reference.get(name), ours.get(name)
        value = ratio(mine, theirs)
        target = ""
        if name in RATIO_TARGETS:
            comparison, limit = RATIO_TARGETS[name]
            target = f"{comparison} {limit:g} ×  {'met' if verdicts[f'{name}_vs_reference'] else 'MISSED'}"
        rows.append(
            (
                label,
                "—" if theirs is None else form.format(theirs),
                "—" if mine is None else form.format(mine),
                "—" if value is None else f"{value:.2f} ×",
                target,
            )
        )
    return rows


def bench_reference(ref: str, arguments: list[str], *, progress: Any = print) -> dict[str, Any]:
    """Install `ref` in a scratch worktree with its own venv, run its `kansrijk bench <arguments>`, and return
    the result it wrote (`--json`). Its progress and table go to stderr. The worktree is removed after."""
    scratch = Path(tempfile.mkdtemp(prefix="kansrijk-bench-ref-"))
    tree, result_file = scratch / "tree", scratch / "reference.json"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    try:
        progress(f"reference: {ref} in a scratch worktree ({tree})")
        _run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), ref], env)
        progress("reference: uv sync --locked (its own venv)")
        _run(["uv", "sync", "--locked"], env, cwd=tree)
        progress(f"reference: kansrijk bench {' '.join(arguments)}")
        _run(["uv", "run", "--locked", "kansrijk", "bench", *arguments, "--json", str(result_file)], env, cwd=tree)
        result: dict[str, Any] = json.loads(result_file.read_text())
        return result
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True, check=False
        )
        shutil.rmtree(scratch, ignore_errors=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True, check=False)


class ReferenceFailed(RuntimeError):
    """The reference could not be installed or benched."""


def _run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if done.returncode != 0:
        raise ReferenceFailed(f"`{' '.join(argv[:4])} …` exited {done.returncode}")
