"""`kansrijk bench` keeps working: a few seconds of every phase, as CI runs it. Nothing is asserted about
speed (the targets are the benchmark's own verdicts, on a full run: docs/performance.md)."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from services.registry import WEB
from tests.e2e.test_cli import ROOT, cli_env
from tests.support import SERVICES, RunEnvironment

pytestmark = pytest.mark.postgres_only  # it measures the system on PostgreSQL


async def test_a_short_bench_measures_every_figure_and_every_melding_arrives(
    environment: RunEnvironment, tmp_path: Path
) -> None:
    figures_file = tmp_path / "bench.json"
    short = ["--duration", "1", "--rate", "5", "--figures-meldingen", "500", "--json", str(figures_file)]
    finished = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "bench", *short],
        env=cli_env(environment),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "end-to-end throughput" in finished.stdout and "B_api" in finished.stdout

    result = json.loads(figures_file.read_text())
    figures = result["figures"]
    for name in (
        "b_pg_per_s",
        "b_mq_per_s",
        "b_api_per_s",
        "throughput_per_s",
        "api_p50_ms",
        "api_p99_ms",
        "e2e_p50_ms",
        "e2e_p99_ms",
        "peak_memory_mb",
        "throughput_vs_b_api",
        "figures_country_ms",
        "figures_gemeente_ms",
        "start_up_s",
        "cpu_ms_per_melding_total",
    ):
        assert isinstance(figures[name], float) and math.isfinite(figures[name]) and figures[name] > 0, name
    services = set(SERVICES)
    assert set(figures["memory_mb"]) == set(figures["cpu_ms_per_melding"]) == services
    # `kansrijk up` also serves the portal: idle, it costs like any service
    assert set(figures["idle_cpu_percent"]) == services | set(WEB)
    assert figures["throughput_meldingen"] > 0 and figures["e2e_meldingen"] == 5
    # Correctness is not a speed figure: every melding of every phase arrived, and none was refused.
    assert result["verdicts"]["all_delivered"], figures
    assert figures["api_errors"] == 0, figures["api_unexpected_statuses"]
    assert figures["figures_meldingen"] == 500 and "GET /v1/figures" in finished.stdout
