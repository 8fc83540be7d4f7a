"""The bench's verdicts, its comparison with a reference commit (`--against`) and its fixture: pure, no timing."""

from __future__ import annotations

from typing import Any

import pytest

from tools.bench import TARGETS, verdicts
from tools.bench.against import RATIO_TARGETS, comparison_rows, ratio, ratio_verdicts
from tools.bench.system import Fixture, OutOfPatients, melding_body


def figures(**changes: Any) -> dict[str, Any]:
    """A run that meets every absolute target and delivered everything."""
    base: dict[str, Any] = {
        "throughput_per_s": 66.0,
        "cpu_ms_per_melding_total": 13.6,
        "api_p50_ms": 12.0,
        "api_p99_ms": 60.0,
        "e2e_p50_ms": 30.0,
        "e2e_p99_ms": 120.0,
        "idle_cpu_max_percent": 0.3,
        "start_up_s": 3.0,
        "peak_memory_mb": 120.0,
        "b_api_per_s": 1600.0,
        "b_pg_per_s": 9000.0,
        "b_mq_per_s": 12000.0,
        "api_errors": 0,
        "throughput_undelivered": 0,
        "e2e_undelivered": 0,
    }
    return base | changes


def test_the_targets_are_issue_29s() -> None:
    assert TARGETS == {
        "api_p50_ms": ("<=", 20.0),
        "api_p99_ms": ("<=", 100.0),
        "e2e_p50_ms": ("<=", 50.0),
        "e2e_p99_ms": ("<=", 250.0),
        "idle_cpu_max_percent": ("<=", 0.5),
        "start_up_s": ("<=", 4.0),
    }
    assert RATIO_TARGETS == {"throughput_per_s": (">=", 4.0), "cpu_ms_per_melding_total": ("<=", 0.25)}


def test_a_run_meeting_every_absolute_target_passes_without_a_reference() -> None:
    out = verdicts(figures())
    assert all(out.values()) and set(out) == set(TARGETS) | {"api_errors", "all_delivered"}


@pytest.mark.parametrize(
    ("name", "value"),
    [("api_p50_ms", 20.1), ("api_p99_ms", 100.5), ("e2e_p50_ms", 51.0), ("e2e_p99_ms", 251.0),
     ("idle_cpu_max_percent", 0.51), ("start_up_s", 4.2), ("api_errors", 1), ("e2e_undelivered", 2)],
)  # fmt: skip
def test_a_miss_of_any_absolute_target_or_of_correctness_fails(name: str, value: float) -> None:
    out = verdicts(figures(**{name: value}))
    assert not all(out.values())
    assert [k for k, ok in out.items() if not ok] == ["all_delivered" if name == "e2e_undelivered" else name]


def test_at_the_limit_is_met() -> None:
    assert all(verdicts(figures(api_p50_ms=20.0, e2e_p99_ms=250.0, start_up_s=4.0)).values())


def test_the_ratio_targets_judge_work_tree_over_reference() -> None:
    reference = figures(throughput_per_s=16.5, cpu_ms_per_melding_total=54.4)
    met = ratio_verdicts(figures(throughput_per_s=66.0, cpu_ms_per_melding_total=13.6), reference)
    assert met == {"throughput_per_s_vs_reference": True, "cpu_ms_per_melding_total_vs_reference": True}
    missed = ratio_verdicts(figures(throughput_per_s=65.9, cpu_ms_per_melding_total=13.7), reference)
    assert missed == {"throughput_per_s_vs_reference": False, "cpu_ms_per_melding_total_vs_reference": False}
    assert not all(verdicts(figures(throughput_per_s=20.0), reference).values())


def test_a_figure_missing_on_either_side_is_a_miss_not_a_crash() -> None:
    reference = figures()
    del reference["cpu_ms_per_melding_total"]
    assert ratio_verdicts(figures(), reference)["cpu_ms_per_melding_total_vs_reference"] is False
    assert ratio(1.0, 0.0) is None and ratio(None, 2.0) is None and ratio(3.0, 2.0) == 1.5


def test_the_comparison_shows_both_columns_the_ratio_and_the_verdict() -> None:
    rows = {row[0]: row for row in comparison_rows(figures(), figures(throughput_per_s=33.0, api_p50_ms=24.0))}
    throughput = rows["end-to-end throughput (meldingen/s)"]
    assert throughput[1:] == ("33.0", "66.0", "2.00 ×", ">= 4 ×  MISSED")
    assert rows["API latency p50 at half load (ms)"][1:] == ("24.0", "12.0", "0.50 ×", "")


def test_a_melding_past_the_last_patient_is_the_benchmarks_own_error_not_a_repeat() -> None:
    """A reused patient would be the system's 409 (one open melding per patient) and read as its error."""
    fixture = Fixture(sender_headers={}, consents=[("111222333", "c-1"), ("123456782", "c-2")])
    assert melding_body(fixture, 1)["patient"]["bsn"] == "123456782"
    with pytest.raises(OutOfPatients):
        melding_body(fixture, 2)
