"""Intake forms before a visit: a draft saves and resumes, sending needs the reason and
freezes the form, only the patient's own upcoming appointment, the appointment's doctor
sees the answers once sent (a draft only as a state), attackers get a recorded 404, and
the reminder for an unfinished form fires once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from records import hooks, services_care, tasks_care
from records.models import IntakeForm, IntakeStatus
from tests import factories
from tests.records.care_helpers import upcoming_appointment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def _html(response) -> str:  # noqa: ANN001
    return response.content.decode()


# --- Services -----------------------------------------------------------------------------


def test_draft_saves_and_resumes(patient, doctor):
    appointment = upcoming_appointment(patient, doctor)
    first = services_care.intake_form_save_draft(
        by=patient, appointment=appointment, reason="Головные боли", symptoms="Две недели"
    )
    assert first.status == IntakeStatus.DRAFT and first.submitted_at is None
    # Later: only what is given changes; the rest is kept.
    again = services_care.intake_form_save_draft(
        by=patient, appointment=appointment, allergies="Пенициллин"
    )
    assert again.pk == first.pk
    again.refresh_from_db()
    assert (again.reason, again.symptoms, again.allergies) == (
        "Головные боли",
        "Две недели",
        "Пенициллин",
    )
    assert IntakeForm.objects.count() == 1
    actions = AuditEvent.objects.filter(
        object_type="records.intakeform", object_id=str(first.pk)
    ).values_list("action", flat=True)
    assert list(actions.order_by("seq")) == [AuditAction.CREATE, AuditAction.CHANGE]


def test_submit_needs_the_reason_and_then_freezes(patient, doctor):
    appointment = upcoming_appointment(patient, doctor)
    services_care.intake_form_save_draft(by=patient, appointment=appointment, symptoms="Кашель")
    with pytest.raises(ValidationError) as caught:
        services_care.intake_form_submit(by=patient, appointment=appointment)
    assert "reason" in caught.value.message_dict
    form = IntakeForm.objects.get()
    assert form.status == IntakeStatus.DRAFT

    sent = services_care.intake_form_submit(
        by=patient, appointment=appointment, reason="Кашель неделю"
    )
    assert sent.status == IntakeStatus.SUBMITTED and sent.submitted_at is not None
    with pytest.raises(ValidationError, match="already been sent"):
        services_care.intake_form_save_draft(by=patient, appointment=appointment, reason="x")
    sent.refresh_from_db()
    assert sent.reason == "Кашель неделю"


def test_only_the_patients_own_upcoming_appointment(patient, other_patient, doctor):
    from scheduling import services as scheduling
    from scheduling.models import AppointmentStatus

    appointment = upcoming_appointment(patient, doctor)
    for intruder in (other_patient, doctor):
        with pytest.raises(PermissionDenied):
            services_care.intake_form_save_draft(by=intruder, appointment=appointment, reason="x")
    with pytest.raises(ValidationError, match="Unknown intake form fields"):
        services_care.intake_form_save_draft(by=patient, appointment=appointment, diagnosis="x")
    scheduling.appointment_cancel(by=patient, appointment=appointment)
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    with pytest.raises(ValidationError, match="before an upcoming appointment"):
        services_care.intake_form_save_draft(by=patient, appointment=appointment, reason="x")
    assert not IntakeForm.objects.exists()


def test_answers_are_encrypted_at_rest(patient, doctor):
    appointment = upcoming_appointment(patient, doctor)
    form = services_care.intake_form_save_draft(
        by=patient, appointment=appointment, reason="ВИЧ-терапия", allergies="Сульфаниламиды"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT reason, allergies FROM records_intakeform WHERE id = %s", [form.pk])
        raw = " ".join(cursor.fetchone())
    assert "ВИЧ" not in raw and "Сульфаниламиды" not in raw


# --- Pages ---------------------------------------------------------------------------------


def test_patient_fills_saves_comes_back_and_sends(client, patient, doctor):
    appointment = upcoming_appointment(patient, doctor)
    client.force_login(patient)
    listing = _html(client.get(reverse("records:care_intake_list")))
    assert "Not started" in listing and "Fill in the form" in listing
    url = reverse("records:care_intake", args=[appointment.public_id])

    response = client.post(url, {"reason": "Боль в спине", "symptoms": "", "action": "draft"})
    assert response.status_code == 302
    listing = _html(client.get(reverse("records:care_intake_list")))
    assert "Draft saved, not sent" in listing and "Continue the form" in listing
    page = _html(client.get(url))
    assert "Боль в спине" in page  # resumes where the patient left it
    assert "Send to the doctor" in page and "Save draft" in page

    response = client.post(url, {"reason": "", "symptoms": "Ноет", "action": "submit"})
    assert response.status_code == 400
    assert "Tell the doctor why you are coming." in _html(response)
    assert IntakeForm.objects.get().status == IntakeStatus.DRAFT

    response = client.post(
        url, {"reason": "Боль в спине", "symptoms": "Ноет", "action": "submit"}, follow=True
    )
    html = _html(response)
    assert "Your form is sent to the doctor." in html
    assert "Sent to the doctor" in html and "Save draft" not in html
    assert IntakeForm.objects.get().status == IntakeStatus.SUBMITTED


def test_doctor_sees_the_form_once_sent(client, patient, doctor):
    appointment = upcoming_appointment(patient, doctor)
    services_care.intake_form_save_draft(by=patient, appointment=appointment, reason="Мигрень")
    url = reverse("records:care_staff_intake", args=[appointment.public_id])
    client.force_login(doctor)
    html = _html(client.get(url))
    assert "has not sent the form yet" in html and "Мигрень" not in html

    services_care.intake_form_submit(
        by=patient, appointment=appointment, reason="Мигрень", allergies="Нет"
    )
    response = client.get(url)
    assert response.status_code == 200
    html = _html(response)
    assert "Мигрень" in html and "Allergies" in html
    form = IntakeForm.objects.get()
    assert AuditEvent.objects.filter(
        actor=doctor,
        action=AuditAction.VIEW,
        object_type="records.intakeform",
        object_id=str(form.pk),
        patient=patient,
    ).exists()
    # And from the patient's care page.
    care = _html(client.get(reverse("records:care_patient", args=[patient.patient_profile.pk])))
    assert url in care and "Sent to the doctor" in care


def test_attackers_get_a_recorded_404(client, patient, other_patient, doctor, reception):
    appointment = upcoming_appointment(patient, doctor)
    services_care.intake_form_submit(by=patient, appointment=appointment, reason="Мигрень")
    patient_url = reverse("records:care_intake", args=[appointment.public_id])
    staff_url = reverse("records:care_staff_intake", args=[appointment.public_id])
    stranger = factories.make_staff(Role.DOCTOR)
    for actor, url in (
        (other_patient, patient_url),
        (doctor, patient_url),
        (other_patient, staff_url),
        (stranger, staff_url),
        (reception, staff_url),
    ):
        client.force_login(actor)
        before = AuditEvent.objects.filter(actor=actor, action=AuditAction.DENIED).count()
        response = client.get(url)
        assert response.status_code == 404, (actor.role, url)
        assert "Мигрень" not in _html(response)
        denials = AuditEvent.objects.filter(actor=actor, action=AuditAction.DENIED, patient=patient)
        assert denials.count() == before + 1
    client.force_login(other_patient)
    response = client.post(patient_url, {"reason": "взлом", "action": "submit"})
    assert response.status_code == 404
    assert IntakeForm.objects.get().reason == "Мигрень"
    missing = reverse("records:care_intake", args=[uuid.uuid4()])
    assert client.get(missing).status_code == 404


# --- Reminders for unfinished forms --------------------------------------------------------


@pytest.fixture
def reminded():
    calls: list[tuple[int, int]] = []

    def handler(*, appointment_id, patient_user_id):  # noqa: ANN001, ANN202
        calls.append((appointment_id, patient_user_id))

    hooks.intake_form_reminder_due.register(handler)
    yield calls
    hooks.intake_form_reminder_due.unregister(handler)


def test_reminders_for_unfinished_forms_fire_once(
    patient, doctor, reminded, django_capture_on_commit_callbacks
):
    from scheduling import services as scheduling

    missing = upcoming_appointment(patient, doctor, days=1, index=0)
    other = factories.make_patient()
    draft = upcoming_appointment(other, doctor, days=1, index=1)
    services_care.intake_form_save_draft(by=other, appointment=draft, reason="Давление")
    third = factories.make_patient()
    sent = upcoming_appointment(third, doctor, days=1, index=2)
    services_care.intake_form_submit(by=third, appointment=sent, reason="Осмотр")
    later = upcoming_appointment(patient, doctor, days=5)
    cancelled = upcoming_appointment(factories.make_patient(), doctor, days=1, index=3)
    scheduling.appointment_cancel(by=None, appointment=cancelled)

    with django_capture_on_commit_callbacks(execute=True):
        due = services_care.intake_forms_due_reminders()
    assert sorted(due) == sorted([missing.pk, draft.pk])
    assert sorted(reminded) == sorted([(missing.pk, patient.pk), (draft.pk, other.pk)])
    # The missing form is now an empty draft that remembers its reminder.
    created = IntakeForm.objects.get(appointment=missing)
    assert created.status == IntakeStatus.DRAFT and created.is_empty
    assert created.reminded_at is not None
    assert not IntakeForm.objects.filter(appointment__in=[later, cancelled]).exists()

    # Once only: a second sweep (or a retried task) finds nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert services_care.intake_forms_due_reminders() == []
    assert len(reminded) == 2
    # The later appointment's turn comes when it is 48 hours away.
    with django_capture_on_commit_callbacks(execute=True):
        due = services_care.intake_forms_due_reminders(now=timezone.now() + timedelta(days=4))
    assert due == [later.pk]
    assert len(reminded) == 3

    # The patient resumes the draft the reminder created.
    form = services_care.intake_form_save_draft(by=patient, appointment=missing, reason="Кашель")
    assert form.pk == created.pk


def test_reminder_task_calls_the_sweep(
    patient, doctor, reminded, django_capture_on_commit_callbacks
):
    appointment = upcoming_appointment(patient, doctor)
    assert tasks_care.intake_forms_due_reminders.name == "records.intake_forms_due_reminders"
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks_care.intake_forms_due_reminders.apply().get() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks_care.intake_forms_due_reminders.apply().get() == 0
    assert reminded == [(appointment.pk, patient.pk)]


# --- On the appointment pages (scheduling's hook, registered by the lead) ------------------


@pytest.fixture
def intake_section():
    from records.sections_care import appointment_intake_section
    from scheduling import hooks as scheduling_hooks

    registered = (
        appointment_intake_section not in scheduling_hooks.appointment_page_sections.handlers
    )
    scheduling_hooks.appointment_page_sections.register(appointment_intake_section)
    yield appointment_intake_section
    if registered:
        scheduling_hooks.appointment_page_sections.unregister(appointment_intake_section)


def test_appointment_pages_link_to_the_form(client, patient, doctor, reception, intake_section):
    appointment = upcoming_appointment(patient, doctor)
    services_care.intake_form_save_draft(by=patient, appointment=appointment, reason="Мигрень")
    client.force_login(patient)
    html = _html(client.get(reverse("scheduling:appointment_detail", args=[appointment.public_id])))
    assert reverse("records:care_intake", args=[appointment.public_id]) in html
    assert "Draft saved, not sent" in html and "Мигрень" not in html

    client.force_login(doctor)
    html = _html(client.get(reverse("scheduling:staff_appointment", args=[appointment.public_id])))
    assert reverse("records:care_staff_intake", args=[appointment.public_id]) in html
    assert "Мигрень" not in html
    # Reception opens the appointment, but nothing of the form.
    assert intake_section(user=reception, appointment=appointment, audience="staff") == ""
    assert (
        intake_section(user=factories.make_patient(), appointment=appointment, audience="patient")
        == ""
    )
