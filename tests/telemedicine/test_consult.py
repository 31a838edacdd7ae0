"""The doctor's consultation screen of a video appointment (issue 8, item 6): the
patient's context read through records' audited selectors (results with their flags in
words and icons, visits with diagnoses, this appointment's intake form, files waiting
for review, current prescriptions, past video calls), the writes during the call through
records' services (a note, a prescription, a referral, the post-call summary the patient
then reads and is told about), bad input that changes nothing, a query count that does
not grow with the record, and the attacker's side: the patient, another doctor, a nurse,
reception, an administrator, an in-person or cancelled appointment, break-glass."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from records import services as records_services
from records import services_care as records_care
from records import services_documents as records_documents
from records.models import (
    Document,
    DocumentKind,
    Prescription,
    PrescriptionStatus,
    Visit,
    VisitNote,
)
from telemedicine import services_consult
from telemedicine.models import Consultation, ConsultationState
from tests import factories
from tests.records.helpers import grant, receive
from tests.records.helpers_documents import media, pdf_bytes, upload_file  # noqa: F401

pytestmark = pytest.mark.django_db

ACTIONS = ("consult_note", "consult_prescription", "consult_referral", "consult_summary")
PAGES = ("consult", "consult_panel")


# --- Building the world ----------------------------------------------------------------


def make_doctor(**profile: object):
    """A doctor of no department: access to a patient only through an appointment."""
    user = factories.make_staff(Role.DOCTOR, language="en", **profile)
    user.staff_profile.department = None
    user.staff_profile.save()
    return user


def video_appointment(
    doctor,  # noqa: ANN001
    patient,  # noqa: ANN001
    *,
    minutes_from_now: float = -5,
    status: str = "in_progress",
    mode: str = "video",
    intake: dict | None = None,
):
    """An appointment of `patient` with `doctor` booked through scheduling's service (the
    booking grants the doctor care access and, for a video one, makes its consultation),
    optionally with the patient's intake form sent, then moved to start
    `minutes_from_now` with `status`."""
    from scheduling import services as scheduling
    from scheduling.availability import free_slots
    from scheduling.models import Appointment

    if not doctor.working_hours.exists():
        factories.make_working_week(doctor)
    ctype = factories.make_consultation_type(doctor, mode=mode)
    day = timezone.now().date() + timedelta(days=2)
    slot = free_slots([doctor.pk], day, 7, consultation_type=ctype)[doctor.pk][0]
    appointment = scheduling.appointment_book_slot(
        by=None,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slot.start,
    )
    if intake is not None:
        records_care.intake_form_submit(by=patient, appointment=appointment, **intake)
    start = (timezone.now() + timedelta(minutes=minutes_from_now)).replace(microsecond=0)
    Appointment.objects.filter(pk=appointment.pk).update(
        during=DateTimeTZRange(start, start + timedelta(minutes=30), "[)"), status=status
    )
    appointment.refresh_from_db()
    return appointment


def url(name: str, appointment) -> str:  # noqa: ANN001
    return reverse(f"telemedicine:{name}", args=[appointment.public_id])


def html(response) -> str:  # noqa: ANN001
    return response.content.decode()


HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def doctor(db):
    return make_doctor(full_name="Irina Sokolova")


@pytest.fixture
def appointment(doctor, patient):
    return video_appointment(doctor, patient)


def _post(client, name: str, appointment, data: dict, *, htmx: bool = True):  # noqa: ANN001, ANN202
    return client.post(url(name, appointment), data, **(HTMX if htmx else {}))


NOTE = {"note-text": "Measure your blood pressure every morning.", "note-visibility": "patient"}
RX = {"rx-medication": "Amlodipine", "rx-dosage": "5 mg once a day", "rx-instructions": ""}
REFERRAL = {
    "referral-title": "Cardiologist",
    "referral-body": "Chest pain on exertion; please assess.",
    "referral-release": "on",
}


# --- The context ------------------------------------------------------------------------


def test_doctor_sees_the_patients_context_with_flags_in_words(
    client,
    doctor,
    patient,
    media,  # noqa: F811
):
    appointment = video_appointment(
        doctor,
        patient,
        intake={"reason": "Headaches for two weeks", "allergies": "Penicillin"},
    )
    high = receive(patient, "hba1c", ["8.9"], days_ago=2)  # waits for review
    normal = receive(patient, "glucose", ["5.0"], days_ago=30)  # released at once
    earlier = records_services.visit_create(
        by=doctor,
        patient=patient.patient_profile,
        started_at=timezone.now() - timedelta(days=40),
        diagnoses=[{"code": "I10", "text": "Essential hypertension"}],
    )
    records_care.prescription_create(
        by=doctor, patient=patient.patient_profile, medication="Lisinopril", dosage="10 mg"
    )
    ended = records_care.prescription_create(
        by=doctor, patient=patient.patient_profile, medication="Old-Drug-X", dosage="1 mg"
    )
    records_care.prescription_end(
        by=doctor, prescription=ended, status=PrescriptionStatus.COMPLETED
    )
    records_documents.document_upload(
        by=patient,
        patient=patient.patient_profile,
        upload=upload_file(pdf_bytes()),
        title="ECG from another clinic",
    )
    past = video_appointment(doctor, patient, minutes_from_now=-60 * 24 * 7, status="completed")
    Consultation.objects.filter(appointment=past).update(
        state=ConsultationState.ENDED,
        started_at=past.starts_at,
        ended_at=past.starts_at + timedelta(minutes=18),
        end_reason="doctor",
    )

    client.force_login(doctor)
    response = client.get(url("consult", appointment))
    assert response.status_code == 200
    page = html(response)
    assert "Consultation with" in page
    # Results, released or not, with the flag in words and an icon, not colour alone.
    assert str(high.public_id) in page and str(normal.public_id) in page
    assert "High" in page and "\u25b2" in page and "Awaiting review" in page
    assert "Released to the patient" in page
    # Visits with diagnoses, the intake form's answers, files to review, prescriptions.
    assert str(earlier.public_id) in page and "I10 Essential hypertension" in page
    assert "Headaches for two weeks" in page and "Penicillin" in page
    assert "ECG from another clinic" in page
    assert "Lisinopril" in page and "Old-Drug-X" not in page
    # The earlier video call, its doctor and length.
    assert "18 minutes" in page and "Irina Sokolova" in page
    # Every read is recorded against the patient, none under break-glass.
    views = AuditEvent.objects.filter(actor=doctor, action=AuditAction.VIEW, patient=patient)
    whats = set(views.values_list("detail__what", flat=True))
    assert {"chart", "patient_care", "documents", "intake_form", "video_consultations"} <= whats
    assert not views.filter(break_glass=True).exists()


def test_the_panel_is_a_partial_and_its_context_part_has_no_forms(client, doctor, appointment):
    client.force_login(doctor)
    panel = html(client.get(url("consult_panel", appointment), **HTMX))
    assert "<html" not in panel and 'id="consult-patient-context"' in panel
    assert 'id="consult-note"' in panel and "records/records.css" in panel
    context = html(client.get(url("consult_panel", appointment) + "?part=context", **HTMX))
    assert 'id="consult-patient-context"' in context and 'id="consult-note"' not in context
    assert 'hx-trigger="consult-changed from:body"' in context


def test_panel_query_count_does_not_grow_with_the_record(client, django_assert_num_queries):
    counts = []
    for size in (1, 12):
        patient = factories.make_patient()
        doctor = make_doctor()
        appointment = video_appointment(doctor, patient)
        for i in range(size):
            receive(patient, "cbc" if i % 2 else "hba1c", None, days_ago=size - i)
            visit = records_services.visit_create(
                by=doctor,
                patient=patient.patient_profile,
                started_at=timezone.now() - timedelta(days=size - i),
                diagnoses=[{"code": f"J{10 + j}", "text": "x"} for j in range(i % 3 + 1)],
            )
            records_services.visit_note_add(by=doctor, visit=visit, text="n", internal=bool(i % 2))
            records_care.prescription_create(
                by=doctor, patient=patient.patient_profile, medication=f"M{i}", dosage="1"
            )
            past = video_appointment(
                doctor, patient, minutes_from_now=-60 * 24 * (i + 2), status="completed"
            )
            Consultation.objects.filter(appointment=past).update(
                state=ConsultationState.ENDED,
                started_at=past.starts_at,
                ended_at=past.starts_at + timedelta(minutes=10),
            )
        client.force_login(doctor)
        target = url("consult_panel", appointment)
        client.get(target, **HTMX)  # warm the session
        if counts:
            with django_assert_num_queries(counts[0]):
                assert client.get(target, **HTMX).status_code == 200
        else:
            with CaptureQueriesContext(connection) as queries:
                assert client.get(target, **HTMX).status_code == 200
            counts.append(len(queries.captured_queries))
    assert counts[0] < 90, counts


# --- Writing during the call -------------------------------------------------------------


def test_notes_make_one_visit_for_the_appointment(client, doctor, patient, appointment):
    client.force_login(doctor)
    first = _post(client, "consult_note", appointment, NOTE)
    assert first.status_code == 200
    assert first["HX-Trigger"] == "consult-changed"
    assert "Note saved." in html(first)
    second = _post(
        client,
        "consult_note",
        appointment,
        {"note-text": "INTERNAL: consider an ECG.", "note-visibility": "internal"},
    )
    assert second.status_code == 200
    visit = Visit.objects.get(appointment=appointment)
    assert visit.doctor == doctor and visit.patient == patient.patient_profile
    assert visit.started_at == appointment.starts_at and not visit.released
    notes = {n.text: n.internal for n in VisitNote.objects.filter(visit=visit)}
    assert notes == {NOTE["note-text"]: False, "INTERNAL: consider an ECG.": True}
    # Without JavaScript: a redirect back to the screen with a message.
    plain = _post(client, "consult_note", appointment, {**NOTE, "note-text": "Third"}, htmx=False)
    assert plain.status_code == 302 and plain["Location"] == url("consult", appointment)
    assert Visit.objects.filter(appointment=appointment).count() == 1


def test_two_writes_at_the_same_moment_make_one_visit(transactional_db, patient):
    doctor = make_doctor()
    appointment = video_appointment(doctor, patient)
    barrier = threading.Barrier(2)
    errors = []

    def write(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            services_consult.consultation_note_add(
                by=doctor, appointment=appointment, text=f"note {n}", internal=True
            )
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert Visit.objects.filter(appointment=appointment).count() == 1
    assert VisitNote.objects.filter(visit__appointment=appointment).count() == 2


def test_prescription_and_referral_during_the_call(client, doctor, patient, appointment, media):  # noqa: F811
    client.force_login(doctor)
    response = _post(
        client,
        "consult_prescription",
        appointment,
        {**RX, "rx-is_repeat": "on", "rx-repeats_allowed": "2"},
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "consult-changed"
    prescription = Prescription.objects.get(patient=patient.patient_profile)
    visit = Visit.objects.get(appointment=appointment)
    assert prescription.visit == visit and prescription.prescriber == doctor
    assert prescription.medication == "Amlodipine" and prescription.repeats_allowed == 2

    response = _post(client, "consult_referral", appointment, REFERRAL)
    assert response.status_code == 200 and response["HX-Trigger"] == "consult-changed"
    referral = Document.objects.get(patient=patient.patient_profile, kind=DocumentKind.REFERRAL)
    assert referral.visit == visit and referral.title == "Cardiologist" and referral.released
    assert referral.renders.count() == 1  # records renders its PDF in a worker

    # The patient sees the prescription in their record at once.
    client.force_login(patient)
    mine = html(client.get(reverse("records:care_prescriptions")))
    assert "Amlodipine" in mine and "5 mg once a day" in mine


def test_summary_releases_the_visit_ends_the_call_and_tells_the_patient(
    client, doctor, django_capture_on_commit_callbacks
):
    from notifications.models import Message
    from tests.telemedicine.helpers_video import ready_patient

    patient = ready_patient()  # consent and identity: the call could take place
    appointment = video_appointment(doctor, patient)
    Consultation.objects.filter(appointment=appointment).update(
        state=ConsultationState.IN_PROGRESS,
        started_at=appointment.starts_at,
        patient_connected=True,
        doctor_connected=True,
    )
    client.force_login(doctor)
    _post(client, "consult_note", appointment, NOTE)
    _post(
        client,
        "consult_note",
        appointment,
        {"note-text": "INTERNAL-ONLY remark", "note-visibility": "internal"},
    )
    panel = html(client.get(url("consult", appointment)))
    assert "End the video call for both" in panel
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(
            client,
            "consult_summary",
            appointment,
            {"summary-summary": "Blood pressure is fine. Walk daily.", "summary-end_call": "on"},
        )
    assert response.status_code == 200 and response["HX-Trigger"] == "consult-changed"
    assert "Save the corrected summary" in html(response)
    visit = Visit.objects.get(appointment=appointment)
    assert visit.released and visit.released_by == doctor
    assert visit.summary == "Blood pressure is fine. Walk daily." and visit.ended_at is not None
    call = Consultation.objects.get(appointment=appointment)
    assert call.state == ConsultationState.ENDED and call.end_reason == "doctor"
    told = Message.objects.filter(user=patient, event="visit_summary")
    assert told.exists()

    # A correction: the patient reads the new text; no second message.
    count = told.count()
    with django_capture_on_commit_callbacks(execute=True):
        _post(
            client,
            "consult_summary",
            appointment,
            {"summary-summary": "Blood pressure is fine. Walk 30 minutes daily."},
        )
    visit.refresh_from_db()
    assert visit.summary.endswith("Walk 30 minutes daily.")
    assert told.count() == count

    client.force_login(patient)
    mine = html(client.get(reverse("records:visits")))
    assert "Walk 30 minutes daily." in mine and NOTE["note-text"] in mine
    assert "INTERNAL-ONLY" not in mine


def test_summary_without_ending_the_call(client, doctor, appointment):
    Consultation.objects.filter(appointment=appointment).update(
        state=ConsultationState.IN_PROGRESS, started_at=appointment.starts_at
    )
    client.force_login(doctor)
    response = _post(client, "consult_summary", appointment, {"summary-summary": "Rest."})
    assert response.status_code == 200
    assert Visit.objects.get(appointment=appointment).released
    assert Consultation.objects.get(appointment=appointment).state == ConsultationState.IN_PROGRESS


def test_a_call_that_never_started_is_left_alone(client, doctor, appointment):
    client.force_login(doctor)
    assert "End the video call for both" not in html(client.get(url("consult", appointment)))
    response = _post(
        client,
        "consult_summary",
        appointment,
        {"summary-summary": "Seen by phone instead.", "summary-end_call": "on"},
    )
    assert response.status_code == 200
    assert Visit.objects.get(appointment=appointment).released
    assert Consultation.objects.get(appointment=appointment).state == ConsultationState.SCHEDULED


# --- Bad input changes nothing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "field_error"),
    [
        ("consult_note", {"note-text": "  ", "note-visibility": "patient"}, "Write the note."),
        ("consult_note", {"note-text": "x", "note-visibility": "everyone"}, "Select a valid"),
        ("consult_note", {"note-text": "x" * 10_001, "note-visibility": "internal"}, "at most"),
        ("consult_prescription", {**RX, "rx-medication": ""}, "Enter the medication."),
        # Rules of records' service: a repeat prescription needs its renewals.
        ("consult_prescription", {**RX, "rx-is_repeat": "on"}, "from 1 to 12 renewals"),
        ("consult_prescription", {**RX, "rx-valid_until": "2001-01-01"}, "cannot be in the past"),
        ("consult_prescription", {**RX, "rx-valid_until": "31/31/2030"}, "Enter a valid date."),
        ("consult_prescription", {**RX, "rx-repeats_allowed": "many"}, "Enter a whole number."),
        ("consult_referral", {**REFERRAL, "referral-body": ""}, "Write the text of the referral."),
        ("consult_summary", {"summary-summary": "   "}, "Write the summary for the patient."),
    ],
)
@pytest.mark.parametrize("htmx", [True, False])
def test_bad_input_is_a_field_error_and_changes_nothing(
    client, doctor, patient, appointment, name, data, field_error, htmx
):
    client.force_login(doctor)
    audit_before = AuditEvent.objects.exclude(action=AuditAction.VIEW).count()
    response = _post(client, name, appointment, data, htmx=htmx)
    # htmx swaps only 2xx answers: the form comes back with its errors; otherwise 400.
    assert response.status_code == (200 if htmx else 400)
    page = html(response)
    assert field_error in page and "There is a problem" in page
    assert "HX-Trigger" not in response
    assert not Visit.objects.filter(appointment=appointment).exists()
    assert not Prescription.objects.exists() and not Document.objects.exists()
    assert not VisitNote.objects.exists()
    assert AuditEvent.objects.exclude(action=AuditAction.VIEW).count() == audit_before


def test_a_field_error_keeps_what_was_typed(client, doctor, appointment):
    client.force_login(doctor)
    response = _post(client, "consult_prescription", appointment, {**RX, "rx-dosage": ""})
    page = html(response)
    assert 'value="Amlodipine"' in page and "Enter the dosage." in page
    assert 'id="consult-prescription"' in page and "<html" not in page


# --- Who may open it ------------------------------------------------------------------------


def _denied(client, user, appointment, name: str, *, method: str = "get", data=None) -> None:  # noqa: ANN001
    client.force_login(user)
    before = AuditEvent.objects.filter(actor=user, action=AuditAction.DENIED).count()
    target = url(name, appointment)
    response = client.post(target, data or {}) if method == "post" else client.get(target)
    assert response.status_code == 404, (name, user.role, response.status_code)
    denials = AuditEvent.objects.filter(actor=user, action=AuditAction.DENIED)
    assert denials.count() == before + 1
    assert denials.order_by("-seq").first().patient == appointment.patient.user
    assert appointment.patient.last_name not in html(response)


@pytest.mark.parametrize("name", PAGES + ACTIONS)
def test_only_the_appointments_doctor_opens_it(client, doctor, patient, appointment, name):
    from accounts.models import Department

    department = Department.objects.get(code="main-outpatient")
    account_services.patient_department_assign(
        by=factories.make_staff(Role.RECEPTION),
        patient=patient.patient_profile,
        department=department,
    )
    colleague = make_doctor()  # in charge of the patient too, not this appointment's doctor
    grant(colleague, patient)
    nurse = factories.make_staff(Role.NURSE)  # of the patient's department: reads the record
    reception = factories.make_staff(Role.RECEPTION)
    admin = factories.make_staff(Role.ADMIN)
    for user in (patient, colleague, nurse, reception, admin):
        _denied(client, user, appointment, name)
    client.force_login(doctor)
    assert client.get(url(name, appointment)).status_code in (200, 302)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("consult_note", NOTE),
        ("consult_prescription", RX),
        ("consult_referral", REFERRAL),
        ("consult_summary", {"summary-summary": "Forged"}),
    ],
)
def test_writes_by_anyone_else_change_nothing(client, patient, appointment, name, data):
    other_doctor = make_doctor()
    grant(other_doctor, patient)
    for attacker in (patient, other_doctor, factories.make_staff(Role.NURSE)):
        _denied(client, attacker, appointment, name, method="post", data=data)
    assert not Visit.objects.exists() and not Prescription.objects.exists()
    assert not Document.objects.exists() and not VisitNote.objects.exists()


def test_another_patients_appointment_and_missing_ids(client, doctor, patient, other_patient):
    theirs = video_appointment(make_doctor(), other_patient)
    _denied(client, doctor, theirs, "consult")
    _denied(client, doctor, theirs, "consult_note", method="post", data=NOTE)
    assert not VisitNote.objects.exists()
    client.force_login(doctor)
    missing = reverse("telemedicine:consult", args=["00000000-0000-4000-8000-000000000000"])
    before = AuditEvent.objects.filter(actor=doctor, action=AuditAction.DENIED).count()
    assert client.get(missing).status_code == 404
    assert AuditEvent.objects.filter(actor=doctor, action=AuditAction.DENIED).count() == before + 1


@pytest.mark.parametrize(
    ("mode", "status"),
    [("in_person", "in_progress"), ("video", "cancelled"), ("video", "no_show")],
)
def test_not_a_video_consultation_of_theirs(client, doctor, patient, mode, status):
    appointment = video_appointment(doctor, patient, mode=mode, status=status)
    _denied(client, doctor, appointment, "consult")
    _denied(client, doctor, appointment, "consult_panel")


def test_anonymous_visitors_are_sent_to_sign_in(client, appointment):
    for name in PAGES + ACTIONS:
        response = client.get(url(name, appointment))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- Break-glass ------------------------------------------------------------------------------


def test_break_glass_reads_flagged_and_refuses_prescribing(client, doctor, patient, appointment):
    account_services.care_access_revoke(
        by=None, doctor=doctor, patient=patient.patient_profile, reason="test"
    )
    _denied(client, doctor, appointment, "consult")

    account_services.break_glass_open(
        by=doctor, patient=patient.patient_profile, reason="Patient unconscious, no records"
    )
    client.force_login(doctor)
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    page = html(client.get(url("consult", appointment)))
    assert "Emergency access" in page
    views = list(
        AuditEvent.objects.filter(
            actor=doctor, action=AuditAction.VIEW, patient=patient, seq__gt=before
        )
    )
    assert views and all(v.break_glass for v in views)

    denied_before = AuditEvent.objects.filter(actor=doctor, action=AuditAction.DENIED).count()
    response = _post(client, "consult_prescription", appointment, RX)
    assert response.status_code == 200
    assert "You cannot write in this patient's record." in html(response) or (
        "cannot prescribe" in html(response)
    )
    assert "HX-Trigger" not in response
    assert not Prescription.objects.exists() and not Visit.objects.exists()
    assert (
        AuditEvent.objects.filter(actor=doctor, action=AuditAction.DENIED).count()
        == denied_before + 1
    )
