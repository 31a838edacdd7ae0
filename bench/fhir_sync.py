"""FHIR sync end to end: resources pulled from sekmet-fhir into the portal per second,
against a bare R4B parse of the same resources in the same run.

    .venv/bin/python bench/fhir_sync.py [--patients 850]     # 12 resources a patient

sekmet-fhir (the MIS of the tests, DESIGN.md; `.local/sekmet-venv`, started on
loopback by tests/mis/sekmet.py) is seeded through transaction Bundles with, per
patient: a Patient with a SNILS, and three DiagnosticReports (complete blood count,
fasting glucose, lipid panel) with their eight Observations (values, units, reference
ranges, interpretation): 12 resources, 10,200 at the default size. The portal's scratch
database has the same patients (bulk-inserted, their SNILS encrypted and blind-indexed
by the models' own fields) and the catalogue's test types.

Timed (`pull`): `mis.services_sync.sync_pull_all` as the beat sweep's tasks run it,
one process, one thread: every type in order, paging through `next` links with
`_include` of the reports' Observations, each resource parsed with the R4B models and
applied through the services (patients matched by SNILS and linked, lab reports
received with their observations encrypted, audit events, release rules and their
"results ready" message rows). Then every cursor is reset and the same pull runs again
(`repull`: everything comes back and nothing changes). The Celery broker is the in-memory
transport here: the messages published on commit (results ready) cost what they cost,
but no broker is measured.

Baseline (`parse`): the same resources' JSON (read from sekmet beforehand, untimed),
parsed with `fhir.resources.R4B` (`get_fhir_model_class(type).model_validate(json)`),
best of three rounds.

Figures: resources per second of wall time, and per CPU second of the pulling process
(the worker; sekmet and PostgreSQL run on the same two cores and take their share of
the wall time). Budget (DESIGN.md): >= 1,000 resources/s per worker core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

from _django import ROOT, django_with_scratch_db

BUDGET_PER_CORE = 1000.0
SNILS_SYSTEM = "urn:oid:1.2.643.100.3"
LOINC = "http://loinc.org"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
UCUM = "http://unitsofmeasure.org"

# (report LOINC, display, [(analyte LOINC, display, unit, low, high, base value)])
PANELS = (
    (
        "58410-2",
        "CBC panel - Blood by Automated count",
        [
            ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/L", 120, 160, 138),
            ("6690-2", "Leukocytes [#/volume] in Blood", "10*9/L", 4.0, 9.0, 6.2),
            ("777-3", "Platelets [#/volume] in Blood", "10*9/L", 180, 320, 250),
        ],
    ),
    (
        "14771-0",
        "Fasting glucose [Moles/volume] in Serum or Plasma",
        [("14771-0", "Fasting glucose", "mmol/L", 3.9, 6.1, 5.2)],
    ),
    (
        "24331-1",
        "Lipid 1996 panel - Serum or Plasma",
        [
            ("14647-2", "Cholesterol [Moles/volume]", "mmol/L", None, 5.2, 4.9),
            ("14646-4", "Cholesterol in HDL [Moles/volume]", "mmol/L", 1.0, None, 1.4),
            ("22748-8", "Cholesterol in LDL [Moles/volume]", "mmol/L", None, 3.0, 2.7),
            ("14927-8", "Triglyceride [Moles/volume]", "mmol/L", None, 1.7, 1.3),
        ],
    ),
)
RESOURCES_PER_PATIENT = 1 + sum(1 + len(analytes) for _code, _name, analytes in PANELS)


def snils(n: int) -> str:
    from accounts.validators import snils_checksum

    first_nine = f"{100_000_000 + (300_000_000 + n * 104729) % 899_999_999:09d}"
    return first_nine + f"{snils_checksum(first_nine):02d}"


def _quantity(value: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def patient_entries(n: int) -> list[dict]:
    """One patient's Patient, reports and observations as transaction entries."""
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    entries = [
        {
            "fullUrl": patient_url,
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": SNILS_SYSTEM, "value": snils(n)}],
                "name": [{"family": f"Бенчев{n}", "given": ["Иван"]}],
                "gender": "male",
                "birthDate": "1970-05-0" + str(1 + n % 9),
            },
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    for index, (report_code, report_name, analytes) in enumerate(PANELS):
        day = f"2026-{1 + n % 12:02d}-{1 + index:02d}"
        results = []
        for code, name, unit, low, high, base in analytes:
            value = round(base * (0.8 + (n % 7) / 10), 1)
            flag = "H" if high is not None and value > high else "N"
            flag = "L" if low is not None and value < low else flag
            reference_range = {}
            if low is not None:
                reference_range["low"] = _quantity(low, unit)
            if high is not None:
                reference_range["high"] = _quantity(high, unit)
            url = f"urn:uuid:{uuid.uuid4()}"
            results.append({"reference": url})
            entries.append(
                {
                    "fullUrl": url,
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "category": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/"
                                        "observation-category",
                                        "code": "laboratory",
                                    }
                                ]
                            }
                        ],
                        "code": {"coding": [{"system": LOINC, "code": code, "display": name}]},
                        "subject": {"reference": patient_url},
                        "effectiveDateTime": f"{day}T08:00:00Z",
                        "valueQuantity": _quantity(value, unit),
                        "interpretation": [{"coding": [{"system": V3, "code": flag}]}],
                        "referenceRange": [reference_range],
                    },
                    "request": {"method": "POST", "url": "Observation"},
                }
            )
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "DiagnosticReport",
                    "status": "final",
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                    "code": "LAB",
                                }
                            ]
                        }
                    ],
                    "code": {
                        "coding": [{"system": LOINC, "code": report_code, "display": report_name}]
                    },
                    "subject": {"reference": patient_url},
                    "effectiveDateTime": f"{day}T08:00:00Z",
                    "issued": f"{day}T12:00:00Z",
                    "result": results,
                },
                "request": {"method": "POST", "url": "DiagnosticReport"},
            }
        )
    return entries


def seed_mis(mis, patients: int, per_bundle: int = 80) -> float:
    """Write the MIS's data through transaction Bundles; returns the seconds it took."""
    started = time.monotonic()
    with mis.session() as session:
        for first in range(0, patients, per_bundle):
            entries = []
            for n in range(first, min(first + per_bundle, patients)):
                entries += patient_entries(n)
            response = session.post(
                mis.base_url,
                json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                headers={"Prefer": "return=minimal"},
                timeout=300,
            )
            if response.status_code >= 400:
                raise SystemExit(f"seeding failed: {response.status_code} {response.text[:500]}")
    return time.monotonic() - started


def seed_portal(patients: int) -> None:
    """The MIS's patients as portal patients (bulk insert; the models' fields encrypt
    and blind-index them) and the catalogue's test types."""
    from accounts.models import PatientProfile, Role, User
    from records.catalogue import test_types_ensure

    test_types_ensure()
    users = []
    for n in range(patients):
        user = User(email=f"bench-fhir-{n}@example.org", role=Role.PATIENT, language="ru")
        user.set_unusable_password()
        users.append(user)
    User.objects.bulk_create(users, batch_size=500)
    users = list(User.objects.filter(role=Role.PATIENT).order_by("pk"))
    profiles = [
        PatientProfile(user=user, last_name=f"Бенчев{n}", first_name="Иван", snils=snils(n))
        for n, user in enumerate(users)
    ]
    PatientProfile.objects.bulk_create(profiles, batch_size=500)


def fetch_all(mis) -> list[dict]:
    """Every resource of the MIS as JSON (for the baseline), untimed."""
    found: list[dict] = []
    with mis.session() as session:
        for resource_type in ("Patient", "DiagnosticReport", "Observation"):
            url = f"{mis.base_url}/{resource_type}?_count=1000"
            while url:
                bundle = session.get(url, timeout=120).json()
                found += [e["resource"] for e in bundle.get("entry", [])]
                url = next(
                    (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"),
                    None,
                )
    return found


def bare_parse(resources: list[dict], rounds: int = 3) -> float:
    """Seconds of the best of `rounds` parses of every resource with the R4B models."""
    from fhir.resources.R4B import get_fhir_model_class

    models = {rt: get_fhir_model_class(rt) for rt in {r["resourceType"] for r in resources}}
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for resource in resources:
            models[resource["resourceType"]].model_validate(resource)
        best = min(best, time.perf_counter() - started)
    return best


def pull(page_size: int, profile: int = 0) -> tuple[float, float, dict[str, dict]]:
    """One pull of every type: (wall seconds, CPU seconds of this process, counts).
    With `profile`, cProfile's top functions (cumulative) go to stderr."""
    from mis import services_sync

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    wall, cpu = time.perf_counter(), time.process_time()
    cursors = services_sync.sync_pull_all(page_size=page_size, force=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(profile)
    counts = {}
    for resource_type, cursor in cursors.items():
        if cursor is None:
            raise SystemExit(f"the pull of {resource_type} did not run")
        if cursor.last_error:
            raise SystemExit(f"the pull of {resource_type} failed: {cursor.last_error}")
        counts[resource_type] = {
            "created": cursor.created_count,
            "updated": cursor.updated_count,
            "unchanged": cursor.unchanged_count,
            "skipped": cursor.skipped_count,
            "quarantined": cursor.quarantined_count,
        }
    return wall, cpu, counts


def portal_counts() -> dict[str, int]:
    from mis.models import ExternalLink, LinkedKind, QuarantinedResource
    from records.models import LabReport, Observation

    return {
        "patients_linked": ExternalLink.objects.filter(kind=LinkedKind.PATIENT).count(),
        "lab_reports": LabReport.objects.count(),
        "observations": Observation.objects.count(),
        "quarantined": QuarantinedResource.objects.count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=850, help="12 resources each")
    parser.add_argument("--page-size", type=int, default=0, help="default: the pull's own")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print cProfile's top N (stderr)"
    )
    parser.add_argument("--scratch-name", default="fhir_sync", help=argparse.SUPPRESS)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from tests.mis.sekmet import running_sekmet

    with django_with_scratch_db(args.scratch_name), running_sekmet() as mis:
        from django.conf import settings

        from clinic.celery import app
        from mis import services_sync
        from mis.models import SyncCursor

        for name, value in mis.django_settings().items():
            setattr(settings, name, value)
        settings.MIS_FHIR_TIMEOUT_SECONDS = 60.0
        settings.MIS_SCHEDULE_MASTER = False
        app.conf.broker_url = "memory://localhost/"  # see the module docstring
        page_size = args.page_size or services_sync.PAGE_SIZE

        seed_seconds = seed_mis(mis, args.patients)
        seed_portal(args.patients)
        resources = fetch_all(mis)
        total = len(resources)
        expected = args.patients * RESOURCES_PER_PATIENT
        if total != expected:
            raise SystemExit(f"sekmet holds {total} resources, expected {expected}")

        parse_seconds = bare_parse(resources)
        pull_wall, pull_cpu, counts = pull(page_size, args.profile)
        in_portal = portal_counts()
        SyncCursor.objects.update(cursor=None)  # everything again: the same pages, no change
        repull_wall, repull_cpu, recounts = pull(page_size)
        after_repull = portal_counts()

    reports = args.patients * len(PANELS)
    observations = args.patients * sum(len(a) for _c, _n, a in PANELS)
    changed_on_repull = sum(
        c["created"] + c["updated"] + c["quarantined"] for c in recounts.values()
    )
    correct = (
        in_portal
        == {
            "patients_linked": args.patients,
            "lab_reports": reports,
            "observations": observations,
            "quarantined": 0,
        }
        and after_repull == in_portal
        and changed_on_repull == 0
    )
    pull_rate = total / pull_wall
    pull_cpu_rate = total / pull_cpu
    parse_rate = total / parse_seconds
    result = {
        "bench": "fhir_sync",
        "resources": total,
        "patients": args.patients,
        "lab_reports": reports,
        "observations": observations,
        "page_size": page_size,
        "seed_seconds": round(seed_seconds, 1),
        "pull_seconds": round(pull_wall, 2),
        "pull_cpu_seconds": round(pull_cpu, 2),
        "pull_per_s": round(pull_rate, 1),
        "pull_per_cpu_s": round(pull_cpu_rate, 1),
        "repull_seconds": round(repull_wall, 2),
        "repull_per_s": round(total / repull_wall, 1),
        "repull_per_cpu_s": round(total / repull_cpu, 1),
        "baseline_parse_seconds": round(parse_seconds, 3),
        "baseline_parse_per_s": round(parse_rate, 1),
        "ratio": round(pull_rate / parse_rate, 3),
        "ratio_cpu": round(pull_cpu_rate / parse_rate, 3),
        "pull_counts": counts,
        "repull_changed": changed_on_repull,
        "in_portal": in_portal,
        "correct": correct,
        "budget_per_core_s": BUDGET_PER_CORE,
        "within_budget": pull_cpu_rate >= BUDGET_PER_CORE,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(
        f"sekmet-fhir -> portal, {total} resources ({args.patients} patients, {reports} "
        f"reports, {observations} observations; seeded in {seed_seconds:.1f} s)\n"
        f"  pull:    {pull_wall:.2f} s wall, {pull_cpu:.2f} s CPU of the worker: "
        f"{pull_rate:.0f} resources/s, {pull_cpu_rate:.0f} per worker CPU second\n"
        f"  re-pull: {repull_wall:.2f} s wall ({total / repull_wall:.0f} resources/s), "
        f"{changed_on_repull} changed\n"
        f"bare R4B parse of the same resources (baseline): {parse_seconds:.3f} s, "
        f"{parse_rate:.0f} resources/s\n"
        f"ratio pull/parse: {result['ratio']} (wall), {result['ratio_cpu']} (worker CPU); "
        f"budget >= {BUDGET_PER_CORE:.0f}/s per worker core: "
        f"{'met' if result['within_budget'] else 'NOT met'}; in the portal: {in_portal}; "
        f"correct: {correct}"
    )
    print(f"machine load (1 min average): {result['load_avg_1m']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
