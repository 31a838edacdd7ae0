"""The doctor's visit pages: record a visit from the chart (optionally for one of the
patient's appointments with that doctor), edit its summary and ICD-10 diagnoses, write
notes, sign and release it; bad input is a field error and changes nothing; query counts
do not grow with the record; and the attacker's side: a doctor without a care
relationship, another doctor, a nurse, reception and the patient."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Department, Role
from audit.models import AuditAction, AuditEvent
from records import services
from records.models import Visit, VisitDiagnosis
from tests import factories
from tests.records.helpers import grant, receive

pytestmark = pytest.mark.django_db


def _doctor(**profile: object):
    """A doctor of no department: access to a patient only through a care grant."""
    user = factories.make_staff(Role.DOCTOR, language="en", **profile)
    user.staff_profile.department = None
    user.staff_profile.save()
    return user


@pytest.fixture
def doctor_in_care(patient):
    doctor = _doctor(full_name="Irina Sokolova")
    grant(doctor, patient)
    return doctor


def _appointment(doctor, patient, *, hours_ago: float = 2, status: str = "completed"):  # noqa: ANN001, ANN202
    """An appointment of `patient` with `doctor`, booked through scheduling's service (so
    the doctor gets the care grant), then moved `hours_ago` into the past with `status`."""
    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

    from scheduling import services as scheduling
    from scheduling.availability import free_slots
    from scheduling.models import Appointment

    if not doctor.working_hours.exists():
        factories.make_working_week(doctor)
    ctype = factories.make_consultation_type(doctor)
    day = timezone.now().date() + timedelta(days=2)
    slot = free_slots([doctor.pk], day, 7, consultation_type=ctype)[doctor.pk][0]
    appointment = scheduling.appointment_book_slot(
        by=None,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slot.start,
    )
    start = (timezone.now() - timedelta(hours=hours_ago)).replace(microsecond=0)
    Appointment.objects.filter(pk=appointment.pk).update(
        during=DateTimeTZRange(start, start + timedelta(minutes=30), "[)"), status=status
    )
    appointment.refresh_from_db()
    return appointment


def _html(response) -> str:  # noqa: ANN001
    return response.content.decode()


def _form(**values: object) -> dict:
    """A POST of the visit form: summary plus diagnosis rows (code, text, kind[, DELETE])."""
    rows = values.pop("diagnoses", [])
    initial = values.pop("initial_rows", 0)
    data = {
        "summary": values.pop("summary", ""),
        "diagnoses-TOTAL_FORMS": str(max(len(rows), 1)),
        "diagnoses-INITIAL_FORMS": str(initial),
        "diagnoses-MIN_NUM_FORMS": "0",
        "diagnoses-MAX_NUM_FORMS": "20",
    }
    for n, row in enumerate(rows):
        code, text, kind, delete = (
            (*row, "primary", False)[:4] if len(row) < 3 else (*row, False)[:4]
        )
        data[f"diagnoses-{n}-code"] = code
        data[f"diagnoses-{n}-text"] = text
        data[f"diagnoses-{n}-kind"] = kind
        if delete:
            data[f"diagnoses-{n}-DELETE"] = "on"
    if not rows:
        data.update({"diagnoses-0-code": "", "diagnoses-0-text": "", "diagnoses-0-kind": "primary"})
    data.update({k: v for k, v in values.items() if v is not None})
    return data


def _denied(actor, patient) -> int:  # noqa: ANN001
    return AuditEvent.objects.filter(
        actor=actor, action=AuditAction.DENIED, patient=patient
    ).count()


# --- The doctor's journey ---------------------------------------------------------------


def test_doctor_records_a_visit_for_an_appointment_from_the_chart(client, patient):
    doctor = _doctor()
    appointment = _appointment(doctor, patient, hours_ago=1)  # booking grants care access
    other = _doctor()
    others = _appointment(other, patient, hours_ago=3)  # with another doctor: not offered
    cancelled = _appointment(doctor, patient, hours_ago=30, status="cancelled")
    client.force_login(doctor)

    chart = _html(client.get(reverse("records:chart", args=[patient.patient_profile.pk])))
    new_url = reverse("records:staff_visit_new", args=[patient.patient_profile.pk])
    assert new_url in chart and "Record a visit" in chart

    page = client.get(new_url)
    assert page.status_code == 200
    html = _html(page)
    assert str(appointment.public_id) in html
    assert str(others.public_id) not in html and str(cancelled.public_id) not in html

    response = client.post(
        new_url,
        _form(
            appointment=str(appointment.public_id),
            summary="Давление в норме. Продолжайте приём препаратов.",
            diagnoses=[("i10", "Эссенциальная гипертензия"), ("E11.9", "СД 2 типа", "secondary")],
        ),
    )
    visit = Visit.objects.get(patient=patient.patient_profile)
    assert response.status_code == 302
    assert response["Location"] == reverse("records:staff_visit", args=[visit.public_id])
    assert visit.doctor == doctor and visit.appointment == appointment
    assert visit.started_at == appointment.starts_at and visit.location == appointment.location
    assert visit.summary == "Давление в норме. Продолжайте приём препаратов."
    assert [(d.code, d.text, d.kind) for d in visit.diagnoses.order_by("sort_order")] == [
        ("I10", "Эссенциальная гипертензия", "primary"),
        ("E11.9", "СД 2 типа", "secondary"),
    ]
    assert not visit.released
    assert AuditEvent.objects.filter(
        actor=doctor, action=AuditAction.CREATE, patient=patient, object_id=str(visit.pk)
    ).exists()

    # The visit page offers editing and signing; the appointment is no longer offered.
    visit_page = _html(client.get(response["Location"]))
    assert reverse("records:staff_visit_edit", args=[visit.public_id]) in visit_page
    assert "Sign and release to the patient" in visit_page
    assert str(appointment.public_id) not in _html(client.get(new_url))


def test_a_visit_without_appointment_at_a_typed_time(client, patient, doctor_in_care):
    client.force_login(doctor_in_care)
    url = reverse("records:staff_visit_new", args=[patient.patient_profile.pk])
    page = _html(client.get(url))
    assert "No recent appointments of this patient with you" in page
    response = client.post(url, _form(started_at="2025-03-10T10:30", summary="Осмотр"))
    assert response.status_code == 302
    visit = Visit.objects.get(patient=patient.patient_profile)
    # Typed in the doctor's location's zone (Moscow: UTC+3).
    assert visit.started_at == datetime(2025, 3, 10, 7, 30, tzinfo=UTC)
    assert visit.location == doctor_in_care.staff_profile.location
    assert visit.appointment is None and not visit.diagnoses.exists()


@pytest.mark.parametrize(
    ("rows", "field", "message"),
    [
        ([("E1.9", "Диабет")], "diagnoses-0-code", "Enter an ICD-10 code"),
        ([("11.9", "Диабет")], "diagnoses-0-code", "Enter an ICD-10 code"),
        ([("E11.12345", "Диабет")], "diagnoses-0-code", "Enter an ICD-10 code"),
        ([("E11.9", "")], "diagnoses-0-text", "Write the diagnosis in words"),
        ([("", "Диабет")], "diagnoses-0-code", "Enter the ICD-10 code of this diagnosis"),
        ([("E11.9", "Диабет", "chronic")], "diagnoses-0-kind", "Select a valid choice"),
    ],
)
def test_bad_diagnoses_are_field_errors_and_nothing_is_recorded(
    client, patient, doctor_in_care, rows, field, message
):
    client.force_login(doctor_in_care)
    events = AuditEvent.objects.filter(action=AuditAction.CREATE).count()
    response = client.post(
        reverse("records:staff_visit_new", args=[patient.patient_profile.pk]),
        _form(summary="Осмотр", diagnoses=rows),
    )
    assert response.status_code == 400
    html = _html(response)
    assert f'id="id_{field}_error"' in html and message in html
    assert 'aria-invalid="true"' in html and "There is a problem" in html
    assert "Осмотр" in html  # what was typed is kept
    assert not Visit.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.CREATE).count() == events


def test_an_appointment_of_someone_else_cannot_be_slipped_in(client, patient, doctor_in_care):
    other_patient = factories.make_patient()
    grant(doctor_in_care, other_patient)
    foreign = _appointment(doctor_in_care, other_patient, hours_ago=2)
    colleague = _appointment(_doctor(), patient, hours_ago=4)
    client.force_login(doctor_in_care)
    url = reverse("records:staff_visit_new", args=[patient.patient_profile.pk])
    for appointment in (foreign, colleague):
        response = client.post(url, _form(appointment=str(appointment.public_id)))
        assert response.status_code == 400
        assert 'id="id_appointment_error"' in _html(response)
    bad_time = client.post(url, _form(started_at="yesterday"))
    assert bad_time.status_code == 400 and 'id="id_started_at_error"' in _html(bad_time)
    assert not Visit.objects.exists()


def test_the_service_refuses_an_appointment_with_another_doctor(patient, doctor_in_care):
    from django.core.exceptions import ValidationError

    colleague = _appointment(_doctor(), patient, hours_ago=4)
    with pytest.raises(ValidationError, match="another doctor"):
        services.visit_create(
            by=doctor_in_care, patient=patient.patient_profile, appointment=colleague
        )


def test_doctor_edits_summary_and_diagnoses(client, patient, doctor_in_care):
    visit = services.visit_create(
        by=doctor_in_care,
        patient=patient.patient_profile,
        summary="Черновик",
        diagnoses=[{"code": "J06.9", "text": "ОРВИ"}, {"code": "R50.9", "text": "Лихорадка"}],
    )
    client.force_login(doctor_in_care)
    url = reverse("records:staff_visit_edit", args=[visit.public_id])
    page = _html(client.get(url))
    assert "Черновик" in page and "J06.9" in page and "Лихорадка" in page
    assert "Remove this diagnosis" in page

    response = client.post(
        url,
        _form(
            summary="ОРВИ, лёгкое течение. Обильное питьё, контроль через 5 дней.",
            initial_rows=2,
            diagnoses=[
                ("J06.9", "ОРВИ", "primary"),
                ("R50.9", "Лихорадка", "primary", True),  # removed
                ("j20.9", "Острый бронхит", "complication"),  # added in a spare row
            ],
        ),
    )
    assert response.status_code == 302
    visit.refresh_from_db()
    assert visit.summary.startswith("ОРВИ, лёгкое течение")
    assert [(d.code, d.text, d.kind) for d in visit.diagnoses.order_by("sort_order")] == [
        ("J06.9", "ОРВИ", "primary"),
        ("J20.9", "Острый бронхит", "complication"),
    ]
    change = AuditEvent.objects.filter(
        actor=doctor_in_care, action=AuditAction.CHANGE, object_id=str(visit.pk)
    ).latest("seq")
    assert change.detail["fields"] == ["summary", "diagnoses"] and change.patient == patient

    # A bad code: a field error, and the visit stays as it was.
    bad = client.post(url, _form(summary="Другое", initial_rows=2, diagnoses=[("J0", "x")]))
    assert bad.status_code == 400 and 'id="id_diagnoses-0-code_error"' in _html(bad)
    visit.refresh_from_db()
    assert visit.summary.startswith("ОРВИ, лёгкое течение")
    assert VisitDiagnosis.objects.filter(visit=visit).count() == 2


def test_notes_sign_and_release_then_the_patient_sees_it(client, patient, doctor_in_care):
    client.force_login(doctor_in_care)
    client.post(
        reverse("records:staff_visit_new", args=[patient.patient_profile.pk]),
        _form(summary="Итог визита для пациента", diagnoses=[("M54.5", "Боль внизу спины")]),
    )
    visit = Visit.objects.get()
    visit_url = reverse("records:staff_visit", args=[visit.public_id])
    client.post(visit_url, {"text": "ВНУТРЕННЯЯ-ЗАМЕТКА", "visibility": "internal"})
    client.post(visit_url, {"text": "Лечебная физкультура", "visibility": "patient"})

    client.force_login(patient)
    assert "Итог визита" not in _html(client.get(reverse("records:visits")))  # not yet

    client.force_login(doctor_in_care)
    client.post(reverse("records:staff_visit_release", args=[visit.public_id]))
    visit.refresh_from_db()
    assert visit.released and visit.released_by == doctor_in_care
    page = _html(client.get(visit_url))
    assert "Sign and release" not in page and "Edit summary and diagnoses" in page

    # Edited after release: the patient sees the corrected version, the change is recorded.
    edit = client.get(reverse("records:staff_visit_edit", args=[visit.public_id]))
    assert "the patient sees your changes" in _html(edit)
    client.post(
        reverse("records:staff_visit_edit", args=[visit.public_id]),
        _form(
            summary="Исправленный итог визита",
            initial_rows=1,
            diagnoses=[("M54.5", "Боль внизу спины")],
        ),
    )

    client.force_login(patient)
    html = _html(client.get(reverse("records:visits")))
    assert "Исправленный итог визита" in html and "M54.5" in html
    assert "Лечебная физкультура" in html and "ВНУТРЕННЯЯ-ЗАМЕТКА" not in html


# --- The attacker's side -------------------------------------------------------------------


def test_a_doctor_without_care_relationship_gets_404_and_is_recorded(client, patient):
    owner = _doctor()
    grant(owner, patient)
    visit = services.visit_create(by=owner, patient=patient.patient_profile, summary="Тайна")
    stranger = _doctor()
    client.force_login(stranger)
    urls = [
        ("get", reverse("records:staff_visit_new", args=[patient.patient_profile.pk])),
        ("post", reverse("records:staff_visit_new", args=[patient.patient_profile.pk])),
        ("get", reverse("records:staff_visit_edit", args=[visit.public_id])),
        ("post", reverse("records:staff_visit_edit", args=[visit.public_id])),
        ("post", reverse("records:staff_visit_release", args=[visit.public_id])),
    ]
    for method, url in urls:
        before = _denied(stranger, patient)
        response = getattr(client, method)(
            url, _form(summary="Взлом") if method == "post" else None
        )
        assert response.status_code == 404, url
        assert "Тайна" not in _html(response) and patient.patient_profile.last_name not in _html(
            response
        )
        assert _denied(stranger, patient) == before + 1, url
    visit.refresh_from_db()
    assert visit.summary == "Тайна" and not visit.released
    assert Visit.objects.count() == 1


def test_break_glass_reads_but_does_not_record_or_edit(client, patient):
    from accounts.services import break_glass_open

    owner = _doctor()
    grant(owner, patient)
    visit = services.visit_create(by=owner, patient=patient.patient_profile)
    emergency = _doctor()
    break_glass_open(
        by=emergency, patient=patient.patient_profile, reason="Без сознания, нужна история"
    )
    client.force_login(emergency)
    chart = client.get(reverse("records:chart", args=[patient.patient_profile.pk]))
    assert chart.status_code == 200 and "Record a visit" not in _html(chart)
    before = _denied(emergency, patient)
    assert (
        client.get(
            reverse("records:staff_visit_new", args=[patient.patient_profile.pk])
        ).status_code
        == 404
    )
    assert (
        client.get(reverse("records:staff_visit_edit", args=[visit.public_id])).status_code == 404
    )
    assert _denied(emergency, patient) == before + 2


def test_another_doctor_in_care_reads_but_cannot_edit_or_sign(client, patient, doctor_in_care):
    visit = services.visit_create(by=doctor_in_care, patient=patient.patient_profile, summary="A")
    colleague = _doctor()
    grant(colleague, patient)
    client.force_login(colleague)
    page = client.get(reverse("records:staff_visit", args=[visit.public_id]))
    assert page.status_code == 200
    assert "Edit summary and diagnoses" not in _html(page) and "Sign and release" not in _html(page)
    before = _denied(colleague, patient)
    edit_url = reverse("records:staff_visit_edit", args=[visit.public_id])
    assert client.get(edit_url).status_code == 404
    assert client.post(edit_url, _form(summary="B")).status_code == 404
    response = client.post(reverse("records:staff_visit_release", args=[visit.public_id]))
    assert response.status_code == 302  # a message on the visit page
    assert _denied(colleague, patient) == before + 3
    visit.refresh_from_db()
    assert visit.summary == "A" and not visit.released
    # Colleagues may record their own visits of the patient.
    new = client.get(reverse("records:staff_visit_new", args=[patient.patient_profile.pk]))
    assert new.status_code == 200


def test_a_nurse_reads_the_visit_but_cannot_record_edit_or_sign(client, patient, doctor_in_care):
    from accounts.services import patient_department_assign

    nurse = factories.make_staff(Role.NURSE, language="en")
    patient_department_assign(
        by=factories.make_staff(Role.RECEPTION),
        patient=patient.patient_profile,
        department=Department.objects.get(code="main-outpatient"),
    )
    visit = services.visit_create(by=doctor_in_care, patient=patient.patient_profile, summary="A")
    client.force_login(nurse)
    page = client.get(reverse("records:staff_visit", args=[visit.public_id]))
    assert page.status_code == 200 and "Sign and release" not in _html(page)
    chart = client.get(reverse("records:chart", args=[patient.patient_profile.pk]))
    assert chart.status_code == 200 and "Record a visit" not in _html(chart)
    before = _denied(nurse, patient)
    assert (
        client.get(
            reverse("records:staff_visit_new", args=[patient.patient_profile.pk])
        ).status_code
        == 404
    )
    assert (
        client.get(reverse("records:staff_visit_edit", args=[visit.public_id])).status_code == 404
    )
    response = client.post(
        reverse("records:staff_visit_release", args=[visit.public_id]), follow=True
    )
    assert "Only the visit&#x27;s doctor can sign and release it." in _html(response)
    assert _denied(nurse, patient) == before + 3
    visit.refresh_from_db()
    assert not visit.released
    # Nurses still write notes (an existing right).
    client.post(
        reverse("records:staff_visit", args=[visit.public_id]),
        {"text": "Давление 130/85", "visibility": "internal"},
    )
    assert visit.notes.count() == 1


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.ADMIN, Role.PATIENT])
def test_reception_admins_and_patients_see_nothing_clinical(client, patient, doctor_in_care, role):
    visit = services.visit_create(
        by=doctor_in_care,
        patient=patient.patient_profile,
        summary="КЛИНИЧЕСКИЙ-ТЕКСТ",
        diagnoses=[{"code": "I10", "text": "Гипертензия"}],
    )
    services.visit_release(by=doctor_in_care, visit=visit)
    actor = patient if role == Role.PATIENT else factories.make_staff(role, language="en")
    client.force_login(actor)
    for url in (
        reverse("records:chart", args=[patient.patient_profile.pk]),
        reverse("records:staff_visit", args=[visit.public_id]),
        reverse("records:staff_visit_new", args=[patient.patient_profile.pk]),
        reverse("records:staff_visit_edit", args=[visit.public_id]),
    ):
        before = _denied(actor, patient)
        response = client.get(url)
        assert response.status_code == 404, url
        assert "КЛИНИЧЕСКИЙ-ТЕКСТ" not in _html(response) and "I10" not in _html(response)
        assert _denied(actor, patient) == before + 1, url
    if role != Role.PATIENT:
        nav = _html(client.get(reverse("home")))
        for name in ("records:review_queue", "records:care_renewal_queue", "records:upload_queue"):
            assert reverse(name) not in nav


# --- Query counts ------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["new", "edit", "visit", "chart"])
def test_visit_pages_query_counts_do_not_grow(client, page, django_assert_num_queries):
    counts = []
    for size in (1, 12):
        patient = factories.make_patient()
        doctor = _doctor()
        for i in range(size):
            _appointment(doctor, patient, hours_ago=2 + i)
            receive(patient, "cbc" if i % 2 else "hba1c", None, days_ago=size - i)
            visit = services.visit_create(
                by=doctor,
                patient=patient.patient_profile,
                diagnoses=[{"code": f"J{10 + j}", "text": "x"} for j in range(i % 4 + 1)],
            )
            services.visit_note_add(by=doctor, visit=visit, text="n", internal=bool(i % 2))
        url = {
            "new": reverse("records:staff_visit_new", args=[patient.patient_profile.pk]),
            "edit": reverse("records:staff_visit_edit", args=[visit.public_id]),
            "visit": reverse("records:staff_visit", args=[visit.public_id]),
            "chart": reverse("records:chart", args=[patient.patient_profile.pk]),
        }[page]
        client.force_login(doctor)
        client.get(url)  # warm the session
        if counts:
            with django_assert_num_queries(counts[0]):
                assert client.get(url).status_code == 200
        else:
            with CaptureQueriesContext(connection) as queries:
                assert client.get(url).status_code == 200
            counts.append(len(queries.captured_queries))
    assert counts[0] < 40
