"""Free-slot search at seed_scale size: `scheduling.availability.free_slots` for 20 doctors
x 14 days (one specialty's doctors, from tomorrow), p50/p95 over N runs, against a
minimal Django view doing one `SELECT 1`, called the same way in the same run.

    .venv/bin/python bench/slot_search.py [--scale tiny|small|full] [--runs 60]

The data is built by `manage.py seed_scale` in the benchmark's scratch database:
`full` is DESIGN.md's scale (100k patients, 200 doctors, 1M appointments over two
years); `small` keeps the same appointments per doctor with fewer doctors and patients,
so each search sees the same calendars. Budget (DESIGN.md): p95 <= 100 ms.

Prints both figures, their ratio, and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time

from _django import django_with_scratch_db

# (patients, doctors, appointments): same density per doctor (about 69 % of the grid).
SCALES = {
    "tiny": (300, 20, 6_000),
    "small": (30_000, 60, 300_000),
    "full": (100_000, 200, 1_000_000),
}
DOCTORS_PER_SEARCH = 20
DAYS = 14
BUDGET_P95_MS = 100.0


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--runs", type=int, default=60, help="timed searches (and baselines)")
    parser.add_argument("--scratch-name", default="slot_search", help=argparse.SUPPRESS)
    args = parser.parse_args()
    patients, doctors, appointments = SCALES[args.scale]

    with django_with_scratch_db(args.scratch_name):
        from datetime import timedelta

        from django.core.management import call_command
        from django.db import connection
        from django.http import JsonResponse
        from django.test import RequestFactory
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from accounts.models import Role, User
        from scheduling.availability import free_slots
        from scheduling.models import ConsultationMode, ConsultationType

        started = time.perf_counter()
        call_command(
            "seed_scale",
            patients=patients,
            doctors=doctors,
            appointments=appointments,
            no_care_grants=True,  # free_slots does not read them; saves a minute
            reports=0,  # nor lab reports (seed_scale's records part)
            stdout=io.StringIO(),
        )
        seed_seconds = time.perf_counter() - started
        print(
            f"seed_scale ({args.scale}): {patients} patients, {doctors} doctors, "
            f"{appointments} appointments in {seed_seconds:.0f} s"
        )

        # Searches: one specialty's doctors with its in-person type (the patient's
        # "specialty -> doctors -> next free slots" step), rotating over specialties.
        searches = []
        for ctype in ConsultationType.objects.filter(
            code__startswith="scale-", mode=ConsultationMode.IN_PERSON
        ).order_by("code"):
            ids = list(
                ctype.doctors.filter(role=Role.DOCTOR).order_by("pk").values_list("pk", flat=True)
            )
            if ids:
                searches.append((ids[:DOCTORS_PER_SEARCH], ctype))
        if len(searches[0][0]) < DOCTORS_PER_SEARCH:  # small scales: fewer per specialty
            doctors_qs = User.objects.filter(role=Role.DOCTOR).order_by("pk")
            ids = list(doctors_qs.values_list("pk", flat=True))
            searches = [
                ([ids[(i + k) % len(ids)] for k in range(DOCTORS_PER_SEARCH)], ctype)
                for i, (_, ctype) in enumerate(searches)
            ]

        def search(i: int) -> int:
            ids, ctype = searches[i % len(searches)]
            day = timezone.localdate() + timedelta(days=1)
            found = free_slots(ids, day, DAYS, consultation_type=ctype)
            return sum(len(slots) for slots in found.values())

        request = RequestFactory().get("/bench/minimal")

        def minimal_view(request) -> JsonResponse:  # noqa: ANN001
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
            return JsonResponse({"ok": True})

        def baseline(i: int) -> int:
            minimal_view(request)
            return 0

        def measure(fn) -> tuple[list[float], list[int]]:  # noqa: ANN001
            times, results = [], []
            for i in range(args.runs):
                t0 = time.perf_counter()
                results.append(fn(i))
                times.append((time.perf_counter() - t0) * 1000)
            return times, results

        for i in range(3):  # warm up: connection, caches, imports
            search(i), baseline(i)
        with CaptureQueriesContext(connection) as queries:
            search(0)
        search_ms, found = measure(search)
        base_ms, _ = measure(baseline)

    p50, p95 = statistics.median(search_ms), percentile(search_ms, 95)
    b50, b95 = statistics.median(base_ms), percentile(base_ms, 95)
    result = {
        "bench": "slot_search",
        "scale": args.scale,
        "patients": patients,
        "doctors": doctors,
        "appointments": appointments,
        "doctors_per_search": DOCTORS_PER_SEARCH,
        "days": DAYS,
        "runs": args.runs,
        "queries_per_search": len(queries.captured_queries),
        "free_slots_found_avg": round(statistics.mean(found)),
        "free_slots_p50_ms": round(p50, 2),
        "free_slots_p95_ms": round(p95, 2),
        "baseline_p50_ms": round(b50, 3),
        "baseline_p95_ms": round(b95, 3),
        "ratio_p50": round(p50 / b50, 1),
        "ratio_p95": round(p95 / b95, 1),
        "budget_p95_ms": BUDGET_P95_MS,
        "within_budget": p95 <= BUDGET_P95_MS,
        "seed_s": round(seed_seconds, 1),
        # Other work on this machine skews every figure; recorded to compare runs fairly.
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(
        f"free_slots({DOCTORS_PER_SEARCH} doctors x {DAYS} days): p50 {p50:.1f} ms, "
        f"p95 {p95:.1f} ms, {result['queries_per_search']} queries, "
        f"~{result['free_slots_found_avg']} free slots"
    )
    print(f"minimal view (SELECT 1):          p50 {b50:.2f} ms, p95 {b95:.2f} ms")
    print(
        f"ratio: p50 {result['ratio_p50']}x, p95 {result['ratio_p95']}x; "
        f"budget p95 <= {BUDGET_P95_MS:.0f} ms: {'met' if result['within_budget'] else 'MISSED'}"
    )
    print(f"machine load (1 min average): {result['load_avg_1m']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
