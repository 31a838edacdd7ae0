"""Clinicians' pages: the review queue, reviewing and releasing a result (the patient
sees it after), the chart with unreleased results marked, notes on a visit, break-glass,
and the roles that may not see results at all."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from records import services
from records.models import LabReport, ReviewState, VisitNote
from tests import factories
from tests.records.helpers import grant, receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def doctor_elsewhere(db):
    """A doctor of another department: access to a patient only through a care grant."""
    user = factories.make_staff(Role.DOCTOR, language="en")
    user.staff_profile.department = None
    user.staff_profile.save()
    return user


def _html(response) -> str:  # noqa: ANN001
    return response.content.decode()


def test_review_queue_lists_only_this_doctors_patients(
    client, patient, other_patient, doctor_elsewhere
):
    grant(doctor_elsewhere, patient)
    mine = receive(patient, "hba1c", ["6.9"])
    immediate = receive(patient, "glucose", ["5.0"])
    not_mine = receive(other_patient, "hba1c", ["7.5"])
    client.force_login(doctor_elsewhere)
    response = client.get(reverse("records:review_queue"))
    assert response.status_code == 200
    html = _html(response)
    assert str(mine.public_id) in html
    assert str(immediate.public_id) not in html and str(not_mine.public_id) not in html
    assert "1 outside the range" in html


def test_doctor_reviews_and_releases_then_the_patient_sees_it(client, patient, doctor_elsewhere):
    grant(doctor_elsewhere, patient)
    report = receive(patient, "hba1c", ["6.9"])
    url = reverse("records:staff_result", args=[report.public_id])
    client.force_login(doctor_elsewhere)
    page = client.get(url)
    assert page.status_code == 200
    assert "Awaiting review" in _html(page) and "6.9" in _html(page)
    response = client.post(
        url, {"comment": "Повышен, пересдать через 3 месяца.", "action": "release"}
    )
    assert response.status_code == 302
    report.refresh_from_db()
    assert report.released and report.review_state == ReviewState.REVIEWED

    client.force_login(patient)
    html = _html(client.get(reverse("records:result_detail", args=[report.public_id])))
    assert "Повышен, пересдать через 3 месяца." in html


def test_comment_without_release_keeps_it_hidden(client, patient, doctor_elsewhere):
    grant(doctor_elsewhere, patient)
    report = receive(patient, "hba1c", ["6.9"])
    client.force_login(doctor_elsewhere)
    client.post(
        reverse("records:staff_result", args=[report.public_id]),
        {"comment": "Сначала обсудим.", "action": "save"},
    )
    report.refresh_from_db()
    assert report.review_state == ReviewState.REVIEWED and not report.released
    client.post(reverse("records:staff_result_release", args=[report.public_id]))
    report.refresh_from_db()
    assert report.released


def test_empty_comment_is_a_field_error_and_changes_nothing(client, patient, doctor_elsewhere):
    grant(doctor_elsewhere, patient)
    report = receive(patient, "hba1c", ["6.9"])
    client.force_login(doctor_elsewhere)
    response = client.post(
        reverse("records:staff_result", args=[report.public_id]),
        {"comment": "", "action": "release"},
    )
    assert response.status_code == 400
    assert 'id="id_comment_error"' in _html(response)
    report.refresh_from_db()
    assert not report.released and report.review_state == ReviewState.PENDING


def test_nurse_reads_but_cannot_review(client, patient):
    from accounts.models import Department
    from accounts.services import patient_department_assign

    nurse = factories.make_staff(Role.NURSE, language="en")
    patient_department_assign(
        by=factories.make_staff(Role.RECEPTION),
        patient=patient.patient_profile,
        department=Department.objects.get(code="main-outpatient"),
    )
    report = receive(patient, "hba1c", ["6.9"])
    client.force_login(nurse)
    url = reverse("records:staff_result", args=[report.public_id])
    page = client.get(url)
    assert page.status_code == 200 and 'name="comment"' not in _html(page)
    response = client.post(url, {"comment": "x", "action": "release"})
    assert response.status_code == 302
    report.refresh_from_db()
    assert not report.released
    assert client.get(reverse("records:review_queue")).status_code == 404


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.ADMIN])
def test_reception_and_admin_never_see_results(client, patient, role):
    user = factories.make_staff(role)
    report = receive(patient, "glucose", ["5.0"])
    client.force_login(user)
    for url in (
        reverse("records:staff_result", args=[report.public_id]),
        reverse("records:chart", args=[patient.patient_profile.pk]),
        reverse("records:results"),
    ):
        assert client.get(url).status_code == 404
    assert (
        AuditEvent.objects.filter(actor=user, action=AuditAction.DENIED, patient=patient).count()
        == 2
    )


def test_doctor_without_relationship_gets_404_recorded(client, patient, doctor_elsewhere):
    report = receive(patient, "glucose", ["5.0"])
    client.force_login(doctor_elsewhere)
    response = client.get(reverse("records:staff_result", args=[report.public_id]))
    assert response.status_code == 404
    assert patient.patient_profile.last_name not in _html(response)
    assert AuditEvent.objects.filter(
        actor=doctor_elsewhere, action=AuditAction.DENIED, object_id=str(report.pk), patient=patient
    ).exists()
    response = client.post(
        reverse("records:staff_result", args=[report.public_id]),
        {"comment": "x", "action": "release"},
    )
    assert response.status_code == 404


def test_chart_marks_unreleased_results_and_counts_internal_notes(
    client, patient, doctor_elsewhere
):
    grant(doctor_elsewhere, patient)
    released = receive(patient, "glucose", ["5.0"])
    pending = receive(patient, "hba1c", ["6.9"])
    visit = services.visit_create(by=doctor_elsewhere, patient=patient.patient_profile)
    services.visit_note_add(by=doctor_elsewhere, visit=visit, text="внутр.", internal=True)
    client.force_login(doctor_elsewhere)
    response = client.get(reverse("records:chart", args=[patient.patient_profile.pk]))
    assert response.status_code == 200
    html = _html(response)
    assert str(released.public_id) in html and str(pending.public_id) in html
    assert "Awaiting review" in html and "Released to the patient" in html
    assert "1 internal" in html and "Not released" in html
    assert AuditEvent.objects.filter(
        actor=doctor_elsewhere, action=AuditAction.VIEW, patient=patient, break_glass=False
    ).exists()


def test_notes_on_a_visit_and_release(client, patient, doctor_elsewhere):
    grant(doctor_elsewhere, patient)
    visit = services.visit_create(
        by=doctor_elsewhere, patient=patient.patient_profile, summary="Итог"
    )
    url = reverse("records:staff_visit", args=[visit.public_id])
    client.force_login(doctor_elsewhere)
    assert client.get(url).status_code == 200
    client.post(url, {"text": "ТОЛЬКО-ДЛЯ-ВРАЧЕЙ", "visibility": "internal"})
    client.post(url, {"text": "Принимать по схеме", "visibility": "patient"})
    bad = client.post(url, {"text": "", "visibility": "patient"})
    assert bad.status_code == 400
    assert VisitNote.objects.filter(visit=visit).count() == 2
    html = _html(client.get(url))
    assert "ТОЛЬКО-ДЛЯ-ВРАЧЕЙ" in html and "Internal" in html
    client.post(reverse("records:staff_visit_release", args=[visit.public_id]))
    visit.refresh_from_db()
    assert visit.released

    client.force_login(patient)
    html = _html(client.get(reverse("records:visits")))
    assert "Принимать по схеме" in html and "Итог" in html
    assert "ТОЛЬКО-ДЛЯ-ВРАЧЕЙ" not in html


def test_break_glass_chart_is_flagged(client, patient, doctor_elsewhere):
    from accounts.services import break_glass_open

    receive(patient, "glucose", ["5.0"])
    client.force_login(doctor_elsewhere)
    url = reverse("records:chart", args=[patient.patient_profile.pk])
    assert client.get(url).status_code == 404
    break_glass_open(
        by=doctor_elsewhere, patient=patient.patient_profile, reason="Без сознания, нужна история"
    )
    response = client.get(url)
    assert response.status_code == 200
    assert "Emergency access" in _html(response)
    event = AuditEvent.objects.filter(actor=doctor_elsewhere, action=AuditAction.VIEW).latest("seq")
    assert event.break_glass and event.patient_id == patient.pk
    # Reading in an emergency is not reviewing: no comment, no release.
    report = LabReport.objects.get(patient=patient.patient_profile)
    page = client.get(reverse("records:staff_result", args=[report.public_id]))
    assert page.status_code == 200 and 'name="comment"' not in _html(page)


def test_staff_trend_includes_unreleased_values_marked(client, patient, doctor_elsewhere):
    grant(doctor_elsewhere, patient)
    receive(patient, "hba1c", ["6.1"], days_ago=100)
    services.lab_report_review(
        by=doctor_elsewhere,
        report=LabReport.objects.get(),
        comment="ok",
        release=True,
    )
    receive(patient, "hba1c", ["6.9"])
    client.force_login(doctor_elsewhere)
    response = client.get(
        reverse("records:staff_trend", args=[patient.patient_profile.pk, "4548-4"])
    )
    assert response.status_code == 200
    html = _html(response)
    assert "6.9" in html and "6.1" in html and "Not released" in html


@pytest.mark.parametrize("name", ["chart", "review_queue"])
def test_staff_query_counts_do_not_grow(
    client, patient, other_patient, name, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for who, n in ((patient, 3), (other_patient, 30)):
        doctor = factories.make_staff(Role.DOCTOR, language="en")
        doctor.staff_profile.department = None
        doctor.staff_profile.save()
        grant(doctor, who)
        for i in range(n):
            receive(who, "hba1c" if i % 2 else "cbc", None, days_ago=n - i)
            visit = services.visit_create(by=doctor, patient=who.patient_profile)
            services.visit_note_add(by=doctor, visit=visit, text="n", internal=True)
        client.force_login(doctor)
        args = [who.patient_profile.pk] if name == "chart" else []
        url = reverse(f"records:{name}", args=args)
        client.get(url)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
