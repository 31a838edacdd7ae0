"""seed_scale's records part at a tiny size: the right counts, ten observations per
report, every value encrypted by the model's field and decrypting to a value whose flag
matches its range, the release rules kept, a long history for the heavy patients, the
results pages working on the data, and a clear refusal to run twice."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Count
from django.urls import reverse

from clinic.scale import SCALE_PASSWORD
from records.management.commands.seed_scale_records import (
    CONCLUSIONS,
    PANELS,
    PERFORMERS,
    SCALE_SOURCE,
)
from records.models import LabReport, Observation, ReviewState
from records.services import derive_interpretation

pytestmark = pytest.mark.django_db


def _seed(**options: object) -> str:
    out = io.StringIO()
    options = {
        "patients": 40,
        "doctors": 2,
        "appointments": 100,
        "reports": 300,
        "heavy_patients": 2,
        "heavy_reports": 40,
        **options,
    }
    call_command("seed_scale", **options, stdout=out)
    return out.getvalue()


def test_tiny_scale_builds_reports_with_ten_observations_each():
    text = _seed()
    assert "Scale data ready" in text and "Scale records ready: 300 lab reports" in text
    assert "values encrypted" in text and "seed_scale done" in text

    reports = LabReport.objects.filter(source=SCALE_SOURCE)
    assert reports.count() == LabReport.objects.count() == 300
    assert Observation.objects.count() == 3000
    per_report = set(
        reports.annotate(n=Count("observations")).values_list("n", flat=True).distinct()
    )
    assert per_report == {10}
    assert set(reports.values_list("test_type__code", flat=True)) == {p.code for p in PANELS}

    # Spread over every scale patient; the heavy ones have a long history.
    per_patient = dict(reports.values_list("patient").annotate(n=Count("id")))
    assert len(per_patient) == 40
    assert sorted(per_patient.values())[-2:] >= [40, 40]
    assert all(p.user.password == SCALE_PASSWORD for p in _profiles(per_patient))

    # Encrypted at rest: the column holds a Fernet token, not the number.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT value_quantity, interpretation FROM records_observation "
            "WHERE value_quantity IS NOT NULL LIMIT 1"
        )
        raw_value, raw_flag = cursor.fetchone()
    assert raw_value.startswith("gAAAA") and raw_flag.startswith("gAAAA")

    # Every value decrypts, and its flag is the one its range gives.
    checked = 0
    for obs in Observation.objects.exclude(status="cancelled").iterator(chunk_size=500):
        assert isinstance(obs.value_quantity, Decimal)
        assert obs.interpretation == derive_interpretation(
            obs.value_quantity, obs.reference_low, obs.reference_high
        )
        checked += 1
    assert checked > 2500
    flags = set(Observation.objects.exclude(status="cancelled").values_list("interpretation"))
    assert {("N",), ("H",)} <= flags
    report = next(r for r in reports if r.conclusion)  # encrypted: chosen in Python
    assert report.performer in PERFORMERS and report.conclusion in CONCLUSIONS


def test_release_rules_hold_in_the_scale_data():
    _seed()
    reports = LabReport.objects.select_related("test_type")
    for report in reports:
        if report.status in ("preliminary", "cancelled"):
            assert not report.released and report.review_state == ReviewState.NOT_REQUIRED
        elif report.test_type.release_policy == "immediate":
            assert report.released and report.review_state == ReviewState.NOT_REQUIRED
        elif report.review_state == ReviewState.REVIEWED:
            assert report.released and report.review_comment and report.reviewed_by_id
        else:
            assert report.review_state == ReviewState.PENDING and not report.released
    assert reports.filter(review_state=ReviewState.REVIEWED).exists()


def test_the_results_pages_open_on_scale_data(client):
    _seed()
    heavy = (
        LabReport.objects.values("patient")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("patient", flat=True)
        .first()
    )
    profile = _profiles([heavy])[0]
    client.force_login(profile.user)
    assert client.get(reverse("records:results")).status_code == 200
    report = LabReport.objects.filter(patient=profile, released_to_patient_at__isnull=False)[0]
    page = client.get(reverse("records:result_detail", args=[report.public_id]))
    assert page.status_code == 200
    code = report.observations.first().loinc_code
    assert client.get(reverse("records:trend", args=[code])).status_code == 200


@pytest.mark.django_db(transaction=True)  # each run commits (and drops its temp tables)
def test_running_the_records_part_again_refuses_clearly_and_seed_scale_adds_a_batch():
    _seed()
    with pytest.raises(CommandError, match="already have lab reports"):
        call_command("seed_scale_records", stdout=io.StringIO())
    assert LabReport.objects.count() == 300
    # seed_scale again: a new batch of patients with their own reports.
    _seed(yes=True, reports=None, heavy_patients=None, heavy_reports=None)
    assert LabReport.objects.count() == 300 + 5 * 40
    assert Observation.objects.count() == 10 * LabReport.objects.count()


def test_records_part_needs_scale_patients_and_fitting_options():
    with pytest.raises(CommandError, match="no scale patients"):
        call_command("seed_scale_records", stdout=io.StringIO())
    with pytest.raises(CommandError, match="do not fit"):
        _seed(reports=50, heavy_patients=2, heavy_reports=40)


def test_reports_zero_skips_records():
    text = _seed(reports=0)
    assert "Scale records ready" not in text and not LabReport.objects.exists()


def test_records_part_refuses_production(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="refuses to run with DJANGO_ENV=production"):
        call_command("seed_scale_records", stdout=io.StringIO())


def _profiles(ids):  # noqa: ANN001, ANN202
    from accounts.models import PatientProfile

    return list(PatientProfile.objects.select_related("user").filter(pk__in=list(ids)))
