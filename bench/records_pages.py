"""Results pages at the data scale: the server time of a patient's results list, one of
their reports and a trend chart (and the doctor's chart of the same patient), for a
patient with a long history, p50/p95 over N requests, against a minimal Django view
(one `SELECT 1`) requested the same way in the same run.

    .venv/bin/python bench/records_pages.py [--scale tiny|small|full] [--small] [--runs N]

The data is built by `manage.py seed_scale` in the benchmark's scratch database
(`bench_scale_records_pages`, dropped afterwards): `full` is DESIGN.md's scale (100k
patients, 200 doctors, 1M appointments, 500k lab reports with 5M observations; ten
patients have 500 reports each, 5,000 observations); `small` (also `--small`, about a
minute) is 10k patients and 50k reports with the same heavy patients; `tiny` is for the
smoke test.

Requests go through Django's test Client in this process: the whole middleware stack
(sessions, the MFA gate, CSP, audit context), the view, its selectors (which record an
audit event per page) and the template; no network and no server queue, so the figures
are the time Django spends per request, one request at a time. The patient and the
doctor are signed in with force_login; the doctor has TOTP (the staff MFA gate) and a
care grant for the patient. Pages rotate over the first result pages, the patient's
newest released reports and every analyte of their panels. Requests of the five kinds
are interleaved, so other load on the machine affects them alike.

Budget (DESIGN.md): p95 <= 150 ms for patient and doctor pages; their query count does
not depend on the number of reports (printed for the heavy patient and a light one).
Prints the figures, their ratio to the baseline, and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import types

from _django import django_with_scratch_db

# seed_scale options per scale.
SCALES = {
    "tiny": {
        "patients": 300,
        "doctors": 5,
        "appointments": 1_500,
        "reports": 1_500,
        "heavy_patients": 2,
        "heavy_reports": 100,
    },
    "small": {
        "patients": 10_000,
        "doctors": 20,
        "appointments": 50_000,
        "reports": 50_000,
        "heavy_patients": 10,
        "heavy_reports": 500,
    },
    "full": {
        "patients": 100_000,
        "doctors": 200,
        "appointments": 1_000_000,
        "reports": 500_000,
        "heavy_patients": 10,
        "heavy_reports": 500,
    },
}
BUDGET_P95_MS = 150.0
PAGES = ("results", "report", "trend", "chart")
ROTATE_PAGES = 5  # results (and chart) pages 1..5
ROTATE_REPORTS = 50  # the patient's newest released reports


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def _install_baseline_urlconf() -> None:
    """The project's URLs plus /bench/minimal (one `SELECT 1`), as ROOT_URLCONF."""
    from django.conf import settings
    from django.db import connection
    from django.http import JsonResponse
    from django.urls import clear_url_caches, include, path

    def minimal_view(request) -> JsonResponse:  # noqa: ANN001
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return JsonResponse({"ok": True})

    module = types.ModuleType("bench_records_pages_urls")
    module.urlpatterns = [
        path("bench/minimal", minimal_view, name="bench_minimal"),
        path("", include(settings.ROOT_URLCONF)),
    ]
    sys.modules[module.__name__] = module
    settings.ROOT_URLCONF = module.__name__
    clear_url_caches()


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--small", action="store_true", help="the same as --scale small")
    parser.add_argument(
        "--runs", type=int, default=None, help="timed requests per page (200; --small: 100)"
    )
    parser.add_argument("--scratch-name", default="scale_records_pages", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scale = "small" if args.small else args.scale
    options = SCALES[scale]
    if args.runs is None:
        args.runs = 200 if scale == "full" else 100

    with django_with_scratch_db(args.scratch_name):
        from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
        from django.core.management import call_command
        from django.db import connection
        from django.db.models import Count, Q
        from django.test import Client
        from django.test.utils import CaptureQueriesContext
        from django.urls import reverse

        from accounts.models import PatientProfile, Role, User
        from accounts.services import care_access_grant
        from clinic.scale import SCALE_PASSWORD
        from records.models import LabReport, Observation

        started = time.perf_counter()
        call_command("seed_scale", **options, stdout=io.StringIO())
        seed_seconds = time.perf_counter() - started
        reports_total = LabReport.objects.count()
        observations_total = Observation.objects.count()
        print(
            f"seed_scale ({scale}): {options['patients']} patients, {options['doctors']} "
            f"doctors, {options['appointments']} appointments, {reports_total} lab reports "
            f"with {observations_total} observations in {seed_seconds:.0f} s"
        )

        _install_baseline_urlconf()

        def patient_with(order: str, **same: object) -> tuple[PatientProfile, int]:
            """The patient with the most (or fewest) reports, two or more released."""
            row = (
                LabReport.objects.filter(**same)
                .values("patient")
                .annotate(
                    n=Count("id"),
                    released=Count("id", filter=Q(released_to_patient_at__isnull=False)),
                )
                .filter(released__gte=2)
                .order_by(order, "patient")
                .first()
            )
            profile = PatientProfile.objects.select_related("user").get(pk=row["patient"])
            return profile, row["n"]

        heavy, heavy_reports = patient_with("-n")
        # A light patient of the same department, and a doctor of another one: both
        # reach the doctor through the care grant, so their pages differ only in how
        # many reports the patient has.
        same_department = (
            {"patient__department_id": heavy.department_id}
            if heavy.department_id
            else {"patient__department__isnull": True}
        )
        light, light_reports = patient_with("n", **same_department)
        doctor = (
            User.objects.filter(role=Role.DOCTOR, password=SCALE_PASSWORD)
            .exclude(staff_profile__department_id=heavy.department_id)
            .order_by("pk")[0]
        )
        TOTP.activate(doctor, generate_totp_secret())  # past the staff MFA gate
        for profile in (heavy, light):
            care_access_grant(by=None, doctor=doctor, patient=profile, reason="benchmark")

        def clients_for(profile: PatientProfile) -> tuple[Client, Client]:
            patient_client, doctor_client = Client(), Client()
            patient_client.force_login(profile.user)
            doctor_client.force_login(doctor)
            return patient_client, doctor_client

        def urls_for(profile: PatientProfile) -> dict[str, list[str]]:
            released = list(
                LabReport.objects.filter(patient=profile, released_to_patient_at__isnull=False)
                .order_by("-issued_at", "-id")
                .values_list("public_id", flat=True)[:ROTATE_REPORTS]
            )
            codes = sorted(
                set(
                    Observation.objects.filter(report__patient=profile).values_list(
                        "loinc_code", flat=True
                    )
                )
            )
            results = reverse("records:results")
            chart = reverse("records:chart", args=[profile.pk])
            return {
                "results": [f"{results}?page={n}" for n in range(1, ROTATE_PAGES + 1)],
                "report": [reverse("records:result_detail", args=[p]) for p in released],
                "trend": [reverse("records:trend", args=[code]) for code in codes],
                "chart": [f"{chart}?page={n}" for n in range(1, ROTATE_PAGES + 1)],
                "baseline": ["/bench/minimal"],
            }

        def get(client: Client, url: str) -> None:
            response = client.get(url)
            if response.status_code != 200:
                raise SystemExit(f"{url}: HTTP {response.status_code}")

        def queries_of(profile: PatientProfile) -> dict[str, int]:
            patient_client, doctor_client = clients_for(profile)
            urls = urls_for(profile)
            counts = {}
            for page in (*PAGES, "baseline"):
                client = doctor_client if page == "chart" else patient_client
                get(client, urls[page][0])  # warm (session, caches)
                with CaptureQueriesContext(connection) as queries:
                    get(client, urls[page][0])
                counts[page] = len(queries.captured_queries)
            return counts

        queries_heavy, queries_light = queries_of(heavy), queries_of(light)

        patient_client, doctor_client = clients_for(heavy)
        urls = urls_for(heavy)
        timings: dict[str, list[float]] = {page: [] for page in (*PAGES, "baseline")}
        for i in range(args.runs + 5):  # the first five warm up
            for page, page_urls in urls.items():
                client = doctor_client if page == "chart" else patient_client
                t0 = time.perf_counter()
                get(client, page_urls[i % len(page_urls)])
                if i >= 5:
                    timings[page].append((time.perf_counter() - t0) * 1000)

    base = timings["baseline"]
    b50, b95 = statistics.median(base), percentile(base, 95)
    result: dict[str, object] = {
        "bench": "records_pages",
        "scale": scale,
        "patients": options["patients"],
        "appointments": options["appointments"],
        "lab_reports": reports_total,
        "observations": observations_total,
        "patient_reports": heavy_reports,
        "light_patient_reports": light_reports,
        "runs": args.runs,
    }
    worst_p95 = 0.0
    lines = []
    labels = {
        "results": "results list (patient)",
        "report": "one report (patient)",
        "trend": "trend chart (patient)",
        "chart": "chart (doctor)",
    }
    for page in PAGES:
        p50, p95 = statistics.median(timings[page]), percentile(timings[page], 95)
        worst_p95 = max(worst_p95, p95)
        result[f"{page}_p50_ms"] = round(p50, 2)
        result[f"{page}_p95_ms"] = round(p95, 2)
        result[f"{page}_ratio_p50"] = round(p50 / b50, 1)
        result[f"{page}_ratio_p95"] = round(p95 / b95, 1)
        result[f"{page}_queries"] = queries_heavy[page]
        result[f"{page}_queries_light"] = queries_light[page]
        lines.append(
            f"{labels[page]:<24} p50 {p50:6.1f} ms, p95 {p95:6.1f} ms "
            f"(x{p50 / b50:.1f} / x{p95 / b95:.1f}), {queries_heavy[page]} queries "
            f"({queries_light[page]} for a patient with {light_reports} reports)"
        )
    result.update(
        {
            "baseline_p50_ms": round(b50, 3),
            "baseline_p95_ms": round(b95, 3),
            "baseline_queries": queries_heavy["baseline"],
            "budget_p95_ms": BUDGET_P95_MS,
            "within_budget": worst_p95 <= BUDGET_P95_MS,
            "queries_constant": all(queries_heavy[p] == queries_light[p] for p in PAGES),
            "seed_s": round(seed_seconds, 1),
            # Other work on this machine skews every figure; recorded to compare runs fairly.
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    )
    print(f"patient with {heavy_reports} reports, {args.runs} requests per page:")
    for line in lines:
        print("  " + line)
    print(
        f"  {'minimal view (SELECT 1)':<24} p50 {b50:6.2f} ms, p95 {b95:6.2f} ms, "
        f"{queries_heavy['baseline']} queries"
    )
    print(
        f"budget p95 <= {BUDGET_P95_MS:.0f} ms: "
        f"{'met' if result['within_budget'] else 'MISSED'} (worst p95 {worst_p95:.1f} ms); "
        f"query counts {'constant' if result['queries_constant'] else 'GROW'} in the "
        "number of reports"
    )
    print(f"machine load (1 min average): {result['load_avg_1m']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
