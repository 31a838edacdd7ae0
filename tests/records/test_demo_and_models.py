"""Demo data, model rules, the encrypted decimal field and the chart geometry."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import Role
from clinic.management.commands.reencrypt import encrypted_models
from records import presentation
from records.demo import seed_records_demo
from records.models import LabReport, Observation, ReviewState, Visit, VisitDiagnosis, VisitNote
from records.selectors import review_queue
from tests import factories


@pytest.mark.django_db
def test_demo_records_are_made_once():
    patients = {n: factories.make_patient(email=f"patient{n:02d}@clinic.test") for n in (1, 2, 3)}
    doctors = {
        n: factories.make_staff(Role.DOCTOR, email=f"doctor{n:02d}@clinic.test") for n in (1, 3)
    }
    counts = seed_records_demo()
    assert counts == {"test types": 6, "visits": 3, "lab reports": 16}
    again = seed_records_demo()
    assert again == {"test types": 0, "visits": 0, "lab reports": 0}
    assert LabReport.objects.count() == 16 and Visit.objects.count() == 3

    p1 = patients[1].patient_profile
    hba1c = LabReport.objects.filter(patient=p1, test_type__code="hba1c")
    assert hba1c.filter(released_to_patient_at__isnull=False).count() == 4
    assert hba1c.filter(review_state=ReviewState.PENDING).count() == 1
    assert VisitNote.objects.filter(visit__patient=p1, internal=True).count() == 2
    queue = review_queue(doctors[1])
    assert {r.test_type.code for r in queue} == {"hba1c", "tsh"}


def test_encrypted_decimal_is_found_by_reencrypt():
    fields = {(model._meta.label, f.name) for model, found, _ in encrypted_models() for f in found}
    assert ("records.Observation", "value_quantity") in fields
    assert ("records.VisitDiagnosis", "code") in fields
    assert ("records.VisitNote", "text") in fields
    assert ("records.LabReport", "review_comment") in fields


def test_encrypted_values_cannot_be_filtered_in_sql():
    with pytest.raises(TypeError):
        list(Observation.objects.filter(value_quantity__gt=5))


def test_model_clean_checks_codes():
    with pytest.raises(ValidationError):
        VisitDiagnosis(code="diabetes", text="x").clean()
    VisitDiagnosis(code="E11.9", text="x").clean()
    with pytest.raises(ValidationError):
        Observation(loinc_code="4548").clean()


def _obs(value: str, days: int, low="4.0", high="5.6", flag=""):  # noqa: ANN001, ANN202
    report = SimpleNamespace(
        effective_at=timezone.now() - timedelta(days=days), public_id="x", released=True
    )
    return SimpleNamespace(
        value_quantity=Decimal(value),
        reference_low=Decimal(low),
        reference_high=Decimal(high),
        reference_text="",
        interpretation=flag,
        name="HbA1c",
        unit="%",
        report=report,
        value_type="quantity",
    )


def test_trend_chart_geometry():
    from django.utils import translation

    series = [_obs("8.4", 700, flag="H"), _obs("6.5", 180, flag="H"), _obs("5.2", 1, flag="N")]
    with translation.override("en"):  # the summary is read in English below
        chart = presentation.trend_chart(series, loinc_code="4548-4")
    xs = [p.x for p in chart.points]
    assert xs == sorted(xs) and chart.plot_left < xs[0] < xs[-1] < chart.plot_right
    ys = [p.y for p in chart.points]
    assert ys[0] < ys[1] < ys[2]  # higher values are drawn higher (smaller y)
    top, height = chart.band
    assert chart.plot_top <= top and top + height <= chart.plot_bottom
    assert [p.out_of_range for p in chart.points] == [True, True, False]
    assert chart.points[0].marker and not chart.points[2].marker
    assert "3 values" in chart.summary


def test_single_value_and_empty_charts():
    one = presentation.trend_chart([_obs("5.0", 1)], loinc_code="4548-4")
    assert len(one.points) == 1 and one.plot_left < one.points[0].x < one.plot_right
    assert presentation.trend_chart([], loinc_code="4548-4").empty


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("6.1000"), "6.1"), (Decimal("120"), "120"), (Decimal("0.0500"), "0.05")],
)
def test_numbers_have_no_trailing_zeros(value, text):
    assert presentation.plain_decimal(value) == text
