"""Patient pages, from the patient's side and the attacker's: results newest first,
flags in words and icons, the doctor's comment, trends, visit history; someone else's
report or an unreleased one is a 404 with a recorded denial; internal notes never reach
the page; query counts do not grow with the number of reports."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from records import services
from records.models import LabReport
from tests.records.helpers import grant, receive

pytestmark = pytest.mark.django_db


def _html(response) -> str:  # noqa: ANN001
    return response.content.decode()


def test_results_list_newest_first(client, patient):
    old = receive(patient, "glucose", ["5.0"], days_ago=30)
    new = receive(patient, "cbc", ["100", "6.0", "250"], days_ago=1)
    hidden = receive(patient, "hba1c", ["6.9"])  # waits for review
    client.force_login(patient)
    response = client.get(reverse("records:results"))
    assert response.status_code == 200
    html = _html(response)
    assert html.index(str(new.public_id)) < html.index(str(old.public_id))
    assert str(hidden.public_id) not in html
    assert "1 value outside the reference range" in html
    assert AuditEvent.objects.filter(
        actor=patient, action=AuditAction.VIEW, object_type="records.labreport", patient=patient
    ).exists()


def test_report_page_shows_value_unit_range_and_flag_in_words(client, patient, doctor):
    grant(doctor, patient)
    report = receive(patient, "hba1c", ["7.2"])
    services.lab_report_review(
        by=doctor, report=report, comment="Гликированный гемоглобин повышен.", release=True
    )
    client.force_login(patient)
    response = client.get(reverse("records:result_detail", args=[report.public_id]))
    assert response.status_code == 200
    html = _html(response)
    assert "7.2" in html and "%" in html and "4\u20135.6" in html
    # Colour, words and an icon: the flag is never colour alone.
    assert re.search(
        r'result-flag--high"><span class="result-flag__icon" aria-hidden="true">\u25b2</span>High',
        html,
    )
    assert "Гликированный гемоглобин повышен." in html
    assert reverse("records:trend", args=["4548-4"]) in html
    event = AuditEvent.objects.filter(
        actor=patient, action=AuditAction.VIEW, object_type="records.labreport"
    ).latest("seq")
    assert event.object_id == str(report.pk)


def test_critical_flag_reads_critically_low(client, patient):
    from records.catalogue import GLUCOSE

    types = __import__("tests.records.helpers", fromlist=["test_types"]).test_types()
    report = services.lab_report_receive(
        by=None,
        patient=patient.patient_profile,
        test_type=types["glucose"],
        observations=[
            {
                "loinc_code": GLUCOSE.loinc_code,
                "name": GLUCOSE.name,
                "value_quantity": "2.1",
                "unit": "mmol/L",
                "reference_low": "3.9",
                "reference_high": "6.1",
                "interpretation": "LL",
            }
        ],
    )
    client.force_login(patient)
    html = _html(client.get(reverse("records:result_detail", args=[report.public_id])))
    assert "Critically low" in html and "result-flag--critical" in html


def test_russian_page_uses_a_decimal_comma(client, patient):
    report = receive(patient, "glucose", ["5.4"])
    patient.language = "ru"
    patient.save(update_fields=["language"])
    client.force_login(patient)
    html = _html(
        client.get(
            reverse("records:result_detail", args=[report.public_id]), HTTP_ACCEPT_LANGUAGE="ru"
        )
    )
    assert "5,4" in html


def test_another_patients_report_is_404_and_recorded(client, patient, other_patient):
    report = receive(other_patient, "glucose", ["5.0"])
    client.force_login(patient)
    response = client.get(reverse("records:result_detail", args=[report.public_id]))
    assert response.status_code == 404
    assert other_patient.patient_profile.last_name not in _html(response)
    assert AuditEvent.objects.filter(
        actor=patient,
        action=AuditAction.DENIED,
        object_type="records.labreport",
        object_id=str(report.pk),
        patient=other_patient,
    ).exists()


def test_unreleased_report_is_404_for_its_own_patient(client, patient):
    report = receive(patient, "hba1c", ["6.9"])
    client.force_login(patient)
    response = client.get(reverse("records:result_detail", args=[report.public_id]))
    assert response.status_code == 404
    assert AuditEvent.objects.filter(
        actor=patient, action=AuditAction.DENIED, object_id=str(report.pk)
    ).exists()


def test_missing_and_forbidden_look_the_same(client, patient, other_patient):
    import uuid

    report = receive(other_patient, "glucose", ["5.0"])
    client.force_login(patient)
    forbidden = client.get(reverse("records:result_detail", args=[report.public_id]))
    missing = client.get(reverse("records:result_detail", args=[uuid.uuid4()]))
    assert forbidden.status_code == missing.status_code == 404

    def clean(html: bytes) -> str:
        text = html.decode()
        text = re.sub(r'nonce="[^"]+"', "", text)
        text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
        text = re.sub(r'name="next" value="[^"]+"', "", text)
        return re.sub(r'"X-CSRFToken": "[^"]+"', "", text)

    assert clean(forbidden.content) == clean(missing.content)


def test_staff_cannot_use_patient_pages(client, patient, doctor):
    grant(doctor, patient)
    report = receive(patient, "glucose", ["5.0"])
    client.force_login(doctor)
    assert client.get(reverse("records:results")).status_code == 404
    assert client.get(reverse("records:result_detail", args=[report.public_id])).status_code == 404
    assert AuditEvent.objects.filter(actor=doctor, action=AuditAction.DENIED).count() == 2


def test_trend_chart_and_table(client, patient):
    for days, value in ((300, "7.8"), (200, "6.9"), (100, "5.9"), (5, "5.4")):
        report = receive(patient, "glucose", [value], days_ago=days)
    unreleased = receive(patient, "glucose", ["9.9"], status="preliminary")
    client.force_login(patient)
    response = client.get(reverse("records:trend", args=["14771-0"]))
    assert response.status_code == 200
    html = _html(response)
    assert '<svg class="trend-chart"' in html and 'role="img"' in html
    assert 'class="trend-band"' in html
    svg = html[html.index('<svg class="trend-chart"') : html.index("</svg>")]
    # Values outside the range are triangles, not only another colour: 7.8 and 6.9.
    assert svg.count('class="trend-point trend-point--out"') == 2
    assert svg.count('<circle class="trend-point"') == 2
    assert "<table" in html and "9.9" not in html
    assert str(report.public_id) in html and str(unreleased.public_id) not in html
    # SVG numbers are never localised (a comma would break the drawing).
    assert not re.search(r'(?:cx|cy|y|height)="\d+,\d', svg)


def test_trend_with_a_bad_code_is_404(client, patient):
    client.force_login(patient)
    assert client.get(reverse("records:trend", args=["not-a-code"])).status_code == 404


def test_visit_history_never_shows_internal_notes(client, patient, doctor):
    grant(doctor, patient)
    visit = services.visit_create(
        by=doctor,
        patient=patient.patient_profile,
        summary="Контроль через 3 месяца.",
        diagnoses=[{"code": "E11.9", "text": "Сахарный диабет 2 типа"}],
    )
    services.visit_note_add(by=doctor, visit=visit, text="СЕКРЕТНАЯ-ЗАМЕТКА", internal=True)
    services.visit_note_add(by=doctor, visit=visit, text="Пейте больше воды", internal=False)
    client.force_login(patient)
    # Before release the patient sees nothing of the visit.
    html = _html(client.get(reverse("records:visits")))
    assert "Контроль через 3 месяца." not in html and "Пейте больше воды" not in html
    services.visit_release(by=doctor, visit=visit)
    html = _html(client.get(reverse("records:visits")))
    assert "Контроль через 3 месяца." in html
    assert "Сахарный диабет 2 типа" in html and "E11.9" in html
    assert "Пейте больше воды" in html
    assert "СЕКРЕТНАЯ-ЗАМЕТКА" not in html


# --- Query counts do not grow with the number of reports ------------------------------------


def _make_records(patient, doctor, n: int) -> list[LabReport]:  # noqa: ANN001
    """n reports (glucose and blood counts in turn) and n released visits, each visit
    with a diagnosis, an internal and a patient-visible note and one of the reports."""
    grant(doctor, patient)
    reports = []
    for i in range(n):
        visit = services.visit_create(
            by=doctor,
            patient=patient.patient_profile,
            summary=f"Визит {i}",
            diagnoses=[{"code": "E11.9", "text": "Сахарный диабет 2 типа"}],
        )
        services.visit_note_add(by=doctor, visit=visit, text="внутренняя", internal=True)
        services.visit_note_add(by=doctor, visit=visit, text="для пациента", internal=False)
        services.visit_release(by=doctor, visit=visit)
        reports.append(
            receive(patient, "cbc" if i % 2 else "glucose", None, days_ago=n - i, visit=visit)
        )
    return reports


@pytest.mark.parametrize(
    "page",
    [
        lambda reports: reverse("records:results"),
        lambda reports: reverse("records:result_detail", args=[reports[-1].public_id]),
        lambda reports: reverse("records:trend", args=["14771-0"]),
        lambda reports: reverse("records:visits"),
    ],
    ids=["results", "report", "trend", "visits"],
)
def test_query_count_does_not_grow_with_reports(
    client, patient, other_patient, doctor, page, django_assert_num_queries
):
    few = _make_records(patient, doctor, 3)
    many = _make_records(other_patient, doctor, 30)
    client.force_login(patient)
    client.get(page(few))  # warm: session, content types
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        assert client.get(page(few)).status_code == 200
    expected = len(small)  # read now: the next request clears the connection's log
    client.force_login(other_patient)
    client.get(page(many))
    with django_assert_num_queries(expected):
        assert client.get(page(many)).status_code == 200
