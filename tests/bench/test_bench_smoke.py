"""The scheduling benchmarks run end to end at a tiny size: they finish by themselves,
and their last line is the JSON record with the figures (DESIGN.md "Performance budgets").
The real figures come from running them at their default size, not from here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


# No database fixture: tests/bootstrap.py has already started (or found) PostgreSQL and
# Redis and put their URLs in the environment; each script makes its own scratch database.


def _scratch(name: str) -> str:
    # One scratch database per test database name, so two suites sharing a PostgreSQL
    # (each with its own TEST_DATABASE_NAME) never drop each other's.
    return f"{name}_smoke_{os.environ.get('TEST_DATABASE_NAME', 'test_clinic')}"[:56]


def _run(script: str, *args: str) -> dict:
    env = {**os.environ, "DJANGO_ENV": "test"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=BENCH,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 2  # human-readable figures, then the JSON record
    return json.loads(lines[-1])


def test_slot_search_runs_tiny():
    figures = _run(
        "slot_search.py",
        "--scale",
        "tiny",
        "--runs",
        "5",
        "--scratch-name",
        _scratch("slot_search"),
    )
    assert figures["bench"] == "slot_search"
    assert figures["doctors_per_search"] == 20 and figures["days"] == 14
    assert figures["free_slots_found_avg"] > 0
    assert figures["free_slots_p95_ms"] >= figures["free_slots_p50_ms"] > 0
    assert figures["baseline_p50_ms"] > 0 and figures["ratio_p50"] > 0
    assert figures["queries_per_search"] <= 10  # a fixed handful, whatever the size


def test_booking_contention_runs_tiny_with_no_overlaps():
    figures = _run(
        "booking_contention.py",
        "--clients", "4",
        "--slots", "2",
        "--rounds", "1",
        "--workers", "1",
        "--threads", "2",
        "--scratch-name", _scratch("booking_contention"),
    )  # fmt: skip
    assert figures["bench"] == "booking_contention"
    assert figures["overlaps"] == 0 and figures["correct"]
    assert figures["errors"] == {} and figures["baseline_errors"] == {}
    # Two slots, four clients: both slots booked exactly once, the rest told "taken".
    assert figures["bookings"] == figures["booked_rows"] == 2
    assert figures["slot_taken"] == figures["requests"] - 2 > 0
    assert figures["baseline_requests"] == figures["requests"]
    assert figures["booking_p95_ms"] > 0 and figures["baseline_p95_ms"] > 0


def test_reminders_runs_tiny_and_sends_each_once():
    figures = _run(
        "reminders.py",
        "--count", "40",
        "--patients", "10",
        "--warmup", "4",
        "--scratch-name", _scratch("reminders"),
    )  # fmt: skip
    assert figures["bench"] == "reminders"
    # Every reminder went out through the workers and the SMTP server exactly once.
    assert figures["correct"] and figures["sent"] == figures["delivered"] == 40
    assert figures["duplicates"] == 0 and figures["attempts"] == 40
    assert figures["states"] == {"sent": 40} and figures["left_in_queue"] == 0
    assert figures["reminder_delay_p99_s"] >= figures["reminder_delay_p50_s"] > 0
    assert figures["baseline_delay_p99_s"] >= figures["baseline_delay_p50_s"] >= 0
    assert figures["reminders_per_s"] > 0 and figures["baseline_tasks_per_s"] > 0
    assert figures["ratio_rate"] > 0


def test_pdf_runs_tiny():
    figures = _run("pdf.py", "--runs", "3", "--scratch-name", _scratch("pdf"))
    assert figures["bench"] == "pdf" and figures["runs"] == 3
    assert figures["pages"] == 1 and figures["pdf_bytes"] > 1000
    assert figures["task_p95_ms"] >= figures["task_p50_ms"] > 0
    assert figures["render_p50_ms"] > 0 and figures["baseline_p50_ms"] > 0
    assert figures["ratio_p50"] > 1  # a report is more work than one line
    assert figures["budget_ms"] == 500.0 and "within_budget" in figures


def test_records_pages_runs_tiny_with_constant_queries():
    figures = _run(
        "records_pages.py",
        "--scale", "tiny",
        "--runs", "5",
        "--scratch-name", _scratch("scale_records_pages"),
    )  # fmt: skip
    assert figures["bench"] == "records_pages" and figures["scale"] == "tiny"
    assert figures["lab_reports"] == 1500 and figures["observations"] == 15000
    assert figures["patient_reports"] >= 100 > figures["light_patient_reports"]
    for page in ("results", "report", "trend", "chart"):
        assert figures[f"{page}_p95_ms"] >= figures[f"{page}_p50_ms"] > 0
        assert figures[f"{page}_ratio_p50"] > 0
        # The same queries for 100+ reports as for a handful.
        assert figures[f"{page}_queries"] == figures[f"{page}_queries_light"], page
    assert figures["queries_constant"]
    assert figures["baseline_p50_ms"] > 0 and figures["budget_p95_ms"] == 150.0
