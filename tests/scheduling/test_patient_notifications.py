"""The confirmation email and its .ics file: RFC 5545 shape, no medical content, the
patient's language, queued on commit through the appointment_booked hook."""

from __future__ import annotations

import re
from datetime import UTC

import pytest
from django.core import mail
from django.core.cache import cache

from scheduling import emails, hooks, ics, services
from scheduling.models import AppointmentStatus
from scheduling.tasks_booking import send_booking_confirmation
from tests import factories
from tests.scheduling.test_patient_booking import Clinic, make_clinic

pytestmark = pytest.mark.django_db
MEDICAL = (
    "General practitioner",
    "Терапевт",
    "Initial consultation",
    "Первичный приём",
    "Olga Petrova",
    "Knee pain",
)


@pytest.fixture
def clinic(db) -> Clinic:
    return make_clinic()


@pytest.fixture
def connected():
    """The handler `SchedulingConfig.ready()` registers (via emails.connect)."""
    already = emails._enqueue_booking_confirmation in hooks.appointment_booked.handlers  # noqa: SLF001
    emails.connect()
    yield
    if not already:
        emails.disconnect()


def book(clinic: Clinic, patient, index: int = 0):
    slot = clinic.slots(days_ahead=2)[index]
    return services.appointment_book_slot(
        by=patient,
        patient=patient.patient_profile,
        doctor=clinic.doctor,
        consultation_type=clinic.ctype,
        starts_at=slot.start,
        patient_note="Knee pain",
    )


def unfold(data: bytes) -> list[str]:
    text = data.decode("utf-8")
    assert "\n" not in text.replace("\r\n", "")  # CRLF only
    return text.replace("\r\n ", "").split("\r\n")[:-1]


def test_ics_is_rfc5545_with_no_medical_content(clinic, patient, settings):
    settings.SITE_URL = "https://portal.clinic.test"
    location = clinic.location
    location.address = "Улица Ленина, дом 1, корпус 2, строение 3, подъезд 4; вход со двора, 2 этаж"
    location.save()
    appointment = book(clinic, patient)
    appointment.refresh_from_db()
    data = ics.appointment_ics(appointment, language="en")
    raw_lines = data.decode("utf-8").split("\r\n")
    assert all(len(line.encode("utf-8")) <= 75 for line in raw_lines)
    assert any(line.startswith(" ") for line in raw_lines)  # the long LOCATION was folded
    lines = unfold(data)
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    fields = dict(line.split(":", 1) for line in lines)
    assert fields["VERSION"] == "2.0" and fields["PRODID"]
    assert fields["UID"] == f"{appointment.public_id}@portal.clinic.test"
    start = appointment.starts_at.astimezone(UTC)
    assert fields["DTSTART"] == start.strftime("%Y%m%dT%H%M%SZ")
    assert fields["DTEND"].endswith("Z") and fields["DTSTAMP"].endswith("Z")
    assert fields["SUMMARY"] == "Appointment at Clinic Network"
    assert fields["LOCATION"].startswith("Clinic on Lenina\\, Улица Ленина\\, дом 1")
    assert "вход со двора\\; 2 этаж" not in fields["LOCATION"]  # ";" escaped, "," too
    assert "\\;" in fields["LOCATION"]
    body = data.decode("utf-8")
    for word in MEDICAL:
        assert word not in body
    assert "BEGIN:VEVENT" in lines and "END:VEVENT" in lines


def test_fold_never_splits_a_character():
    line = "LOCATION:" + "ж" * 100
    folded = ics.fold(line)
    for part in folded.split("\r\n"):
        assert len(part.encode("utf-8")) <= 75
        part.encode("utf-8").decode("utf-8")
    assert folded.replace("\r\n ", "") == line


def test_booking_emails_a_confirmation_with_the_ics(
    clinic, patient, celery_eager, connected, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        appointment = book(clinic, patient)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [patient.email]
    assert message.subject == "Your appointment at Clinic Network is booked"
    local = appointment.starts_at.astimezone(clinic.location.tzinfo)
    assert f"Time: {local:%H:%M} (Europe/Moscow time)" in message.body
    assert "Lenina 1, Moscow" in message.body and "/appointments/" in message.body
    for word in MEDICAL:
        assert word not in message.body and word not in message.subject
    (name, content, mimetype) = message.attachments[0]
    assert name.endswith(".ics") and mimetype.startswith("text/calendar")
    content = content.encode() if isinstance(content, str) else content
    assert f"UID:{appointment.public_id}@".encode() in content
    for word in MEDICAL:
        assert word.encode() not in content


def test_email_in_russian_for_a_russian_speaking_patient(
    clinic, celery_eager, connected, django_capture_on_commit_callbacks
):
    from django.utils import formats, translation

    russian = factories.make_patient(language="ru")
    with django_capture_on_commit_callbacks(execute=True):
        appointment = book(clinic, russian)
    message = mail.outbox[0]
    local = appointment.starts_at.astimezone(clinic.location.tzinfo)
    with translation.override("ru"):
        russian_date = formats.date_format(local, "l, j E Y")
    assert re.search("[а-я]", russian_date)  # Django's own Russian day and month names
    assert russian_date in message.body and "Europe/Moscow" in message.body
    with translation.override("ru"):
        calendar = dict(
            line.split(":", 1) for line in unfold(ics.appointment_ics(appointment)) if ":" in line
        )
    assert calendar["SUMMARY"].endswith("Clinic Network")


def test_held_appointments_send_nothing_until_booked(
    patient, celery_eager, connected, django_capture_on_commit_callbacks
):
    clinic = make_clinic(prepayment_required=True)
    slot = clinic.slots(days_ahead=2)[0]
    with django_capture_on_commit_callbacks(execute=True):
        held = services.appointment_hold(
            by=patient,
            patient=patient.patient_profile,
            doctor=clinic.doctor,
            consultation_type=clinic.ctype,
            starts_at=slot.start,
        )
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        services.appointment_book(by=None, appointment=held)  # e.g. the payment arrived
    assert len(mail.outbox) == 1


def test_task_is_idempotent_and_skips_cancelled(clinic, patient, other_patient):
    appointment = book(clinic, patient)
    cache.delete(f"scheduling:booking-confirmation-sent:{appointment.pk}")
    assert send_booking_confirmation(appointment.pk) is True
    assert send_booking_confirmation(appointment.pk) is False  # a redelivered message
    assert len(mail.outbox) == 1
    cancelled = book(clinic, other_patient)
    services.appointment_cancel(by=other_patient, appointment=cancelled)
    assert send_booking_confirmation(cancelled.pk) is False
    assert send_booking_confirmation(987654321) is False
    assert len(mail.outbox) == 1
    cancelled.refresh_from_db()
    assert cancelled.status == AppointmentStatus.CANCELLED


def test_a_broker_outage_does_not_fail_the_booking(
    clinic, patient, connected, django_capture_on_commit_callbacks, monkeypatch
):
    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(send_booking_confirmation, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        appointment = book(clinic, patient)
    assert appointment.status == AppointmentStatus.BOOKED
