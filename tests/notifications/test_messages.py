"""Event messages: one outbox for every app's events, written in the event's transaction,
sent once, free of medical content, visible as delivery state on the appointment pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import formats, timezone, translation

from accounts.models import Role
from notifications import services
from notifications.models import Event, Message, NotificationPreference, ReminderState
from notifications.tasks import send_message
from scheduling import services as scheduling_services
from scheduling.models import AppointmentStatus
from tests import factories

pytestmark = pytest.mark.django_db

# Words that must never leave the portal: the type of visit, the specialty, the doctor,
# the patient's own note, a diagnosis, a result, a medication.
CANARIES = (
    "Кардиология",
    "Cardiology",
    "Терапевт",
    "General practitioner",
    "Knee pain",
    "hypertension",
    "Гипертония",
    "metformin",
    "HbA1c",
)


def _book_with_canaries(book, patient):
    appointment = book(
        patient=patient, ctype_fields={"name_ru": "Кардиология", "name_en": "Cardiology"}
    )
    appointment.patient_note = "Knee pain, hypertension, metformin, HbA1c 9.1"
    appointment.save(update_fields=["patient_note"])
    return appointment


def _assert_clean(*texts: str, doctor=None) -> None:
    for text in texts:
        for word in CANARIES:
            assert word.lower() not in text.lower(), word
        if doctor is not None:
            assert doctor.staff_profile.full_name not in text


def test_booking_queues_a_confirmation_with_the_ics_and_sends_it_on_commit(
    book, celery_eager, django_capture_on_commit_callbacks
):
    patient = factories.make_patient(language="en")
    with django_capture_on_commit_callbacks(execute=True):
        appointment = _book_with_canaries(book, patient)
    (row,) = Message.objects.filter(event=Event.BOOKING_CONFIRMED)
    assert (row.user_id, row.object_type, row.object_id) == (
        patient.pk,
        "appointment",
        appointment.pk,
    )
    row.refresh_from_db()
    assert row.state == ReminderState.SENT and row.sent_at is not None
    (email,) = mail.outbox
    assert email.to == [patient.email]
    assert email.subject == "Your appointment at Clinic Network is booked"
    local = appointment.starts_at.astimezone(appointment.location.tzinfo)
    assert f"Time: {local:%H:%M} (Europe/Moscow time)" in email.body
    assert "Street 1" in email.body and "/appointments/" in email.body
    _assert_clean(email.subject, email.body, doctor=appointment.doctor)
    (name, content, mimetype) = email.attachments[0]
    assert name.endswith(".ics") and mimetype.startswith("text/calendar")
    content = content.encode() if isinstance(content, str) else content
    assert f"UID:{appointment.public_id}@".encode() in content
    _assert_clean(content.decode(), doctor=appointment.doctor)
    assert email.extra_headers["Message-ID"] == f"<message-{row.pk}@127.0.0.1>"


def test_a_russian_speaking_patient_gets_russian(
    book, celery_eager, django_capture_on_commit_callbacks
):
    patient = factories.make_patient(language="ru")
    with django_capture_on_commit_callbacks(execute=True):
        appointment = book(patient=patient)
    (email,) = mail.outbox
    local = appointment.starts_at.astimezone(appointment.location.tzinfo)
    with translation.override("ru"):
        russian_date = formats.date_format(local, "l, j E Y")
    assert re.search("[а-я]", russian_date)
    assert russian_date in email.body
    assert "Clinic Network" in email.subject and re.search("[а-я]", email.subject)


def test_the_preferred_language_wins_over_the_portal_language(
    book, celery_eager, django_capture_on_commit_callbacks
):
    patient = factories.make_patient(language="ru")
    NotificationPreference.objects.create(user=patient, language="en")
    with django_capture_on_commit_callbacks(execute=True):
        book(patient=patient)
    assert mail.outbox[0].subject == "Your appointment at Clinic Network is booked"


def test_sending_twice_sends_once_and_a_cancelled_booking_sends_nothing(book, other_patient):
    appointment = book()
    row = Message.objects.get(event=Event.BOOKING_CONFIRMED, object_id=appointment.pk)
    assert services.message_send(message_id=row.pk) == ReminderState.SENT
    assert services.message_send(message_id=row.pk) == "busy"  # a redelivered message
    assert send_message(row.pk) == "busy"
    assert len(mail.outbox) == 1
    second = book(patient=factories.make_patient())
    scheduling_services.appointment_cancel(by=None, appointment=second)
    pending = Message.objects.get(event=Event.BOOKING_CONFIRMED, object_id=second.pk)
    assert services.message_send(message_id=pending.pk) == ReminderState.REVOKED
    assert len(mail.outbox) == 1


def test_a_broker_outage_keeps_the_booking_and_the_sweep_sends_later(
    book, celery_eager, django_capture_on_commit_callbacks, monkeypatch
):
    calls = []

    def down(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("broker down")

    monkeypatch.setattr(send_message, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        appointment = book()
    assert appointment.status == AppointmentStatus.BOOKED
    assert len(calls) == 1  # tried once, then left for the sweep
    row = Message.objects.get(event=Event.BOOKING_CONFIRMED)
    assert row.state == ReminderState.PENDING and mail.outbox == []
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.messages_sweep() == 1
    row.refresh_from_db()
    assert row.state == ReminderState.SENT and len(mail.outbox) == 1


def test_held_appointments_send_nothing_until_booked(
    book, celery_eager, django_capture_on_commit_callbacks
):
    appointment = book()
    Message.objects.all().delete()
    mail.outbox.clear()
    held = scheduling_services.appointment_hold(
        by=None,
        patient=factories.make_patient().patient_profile,
        doctor=appointment.doctor,
        consultation_type=appointment.consultation_type,
        starts_at=appointment.starts_at + timedelta(hours=2),
    )
    assert not Message.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        scheduling_services.appointment_book(by=None, appointment=held)
    assert Message.objects.filter(object_id=held.pk, event=Event.BOOKING_CONFIRMED).count() == 1
    assert len(mail.outbox) == 1


def test_cancellation_by_the_clinic_is_told_and_by_the_patient_is_not(book):
    reception = factories.make_staff(Role.RECEPTION)
    by_clinic = book()
    scheduling_services.appointment_cancel(by=reception, appointment=by_clinic, reason="doctor ill")
    assert (
        Message.objects.filter(event=Event.APPOINTMENT_CANCELLED, object_id=by_clinic.pk).count()
        == 1
    )
    patient = factories.make_patient()
    by_patient = book(patient=patient)
    scheduling_services.appointment_cancel(by=patient, appointment=by_patient)
    assert not Message.objects.filter(
        event=Event.APPOINTMENT_CANCELLED, object_id=by_patient.pk
    ).exists()
    row = Message.objects.get(event=Event.APPOINTMENT_CANCELLED)
    assert services.message_send(message_id=row.pk) == ReminderState.SENT
    email = mail.outbox[-1]
    assert "cancelled" in email.subject and "doctor ill" not in email.body


def test_each_move_is_told_once_with_a_new_calendar_file(book):
    appointment = book()
    first = appointment.starts_at + timedelta(hours=1)
    scheduling_services.appointment_reschedule(by=None, appointment=appointment, new_start=first)
    scheduling_services.appointment_reschedule(
        by=None, appointment=appointment, new_start=first + timedelta(hours=1)
    )
    moved = Message.objects.filter(event=Event.APPOINTMENT_MOVED, object_id=appointment.pk)
    assert moved.count() == 2
    for row in moved:
        assert services.message_send(message_id=row.pk) == ReminderState.SENT
    ics = mail.outbox[-1].attachments[0][1]
    ics = ics.encode() if isinstance(ics, str) else ics
    assert b"SEQUENCE:2" in ics


def test_the_api_is_idempotent_by_key_and_refuses_unknown_events():
    patient = factories.make_patient()
    first = services.notification_send(
        user_id=patient.pk, event=Event.RESULTS_READY, object_type="report", object_id=7
    )
    again = services.notification_send(
        user_id=patient.pk, event=Event.RESULTS_READY, object_type="report", object_id=7
    )
    assert len(first) == 1 and again == []
    assert Message.objects.filter(event=Event.RESULTS_READY).count() == 1
    with pytest.raises(ValueError, match="unknown event"):
        services.notification_send(user_id=patient.pk, event="diagnosis_is")


def test_sms_rows_follow_the_preference_and_fall_back_to_email(fake_sms_ru):
    patient = factories.make_patient(language="ru")
    NotificationPreference.objects.create(user=patient, email_enabled=False, sms_enabled=True)
    (row,) = services.notification_send(user_id=patient.pk, event=Event.RESULTS_READY, object_id=1)
    assert row.channel == "sms"
    assert services.message_send(message_id=row.pk) == ReminderState.SENT
    (request,) = fake_sms_ru.requests
    assert request["to"] == "79123456789" and "портал" in request["msg"]
    fake_sms_ru.mode = "error"
    (row,) = services.notification_send(user_id=patient.pk, event=Event.DOCUMENT_READY, object_id=1)
    assert services.message_send(message_id=row.pk) == ReminderState.FELL_BACK
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [patient.email]


@pytest.mark.parametrize("language", ["ru", "en"])
@pytest.mark.parametrize("event", Event.values)
def test_every_event_says_only_where_to_look(event, language):
    patient = factories.make_patient(language=language, last_name="Петрова")
    (row,) = services.notification_send(
        user_id=patient.pk,
        event=event,
        link="https://receipts.example/r/abc" if event == Event.PAYMENT_RECEIPT else "",
    )
    assert services.message_send(message_id=row.pk) == ReminderState.SENT
    (email,) = mail.outbox
    assert email.subject and "http" in email.body
    assert "Петрова" not in email.body  # not even the patient's own name
    _assert_clean(email.subject, email.body)
    if event == Event.PAYMENT_RECEIPT:
        assert "https://receipts.example/r/abc" in email.body
    if event == Event.RESULTS_READY and language == "en":
        assert "Your results are ready — open the portal." in email.body


def test_waitlist_offers_are_told_in_the_offering_transaction(book):
    from scheduling import waitlist
    from scheduling.models import WaitlistEntry

    appointment = book()
    waiting = factories.make_patient()
    WaitlistEntry.objects.create(
        patient=waiting.patient_profile,
        doctor=appointment.doctor,
        consultation_type=appointment.consultation_type,
        wanted_before=appointment.starts_at + timedelta(days=5),
    )
    scheduling_services.appointment_cancel(by=appointment.patient.user, appointment=appointment)
    offer = waitlist.waitlist_offer_next(
        doctor_id=appointment.doctor_id,
        starts_at=appointment.starts_at,
        consultation_type=appointment.consultation_type,
    )
    assert offer is not None
    (row,) = Message.objects.filter(event=Event.WAITLIST_OFFER)
    assert row.user_id == waiting.pk and row.object_id == offer.appointment_id


def test_the_patient_and_reception_see_the_delivery_state(book, client, login_staff):
    patient = factories.make_patient(language="en")
    appointment = book(patient=patient)
    confirmation = Message.objects.get(event=Event.BOOKING_CONFIRMED)
    services.message_send(message_id=confirmation.pk)
    client.force_login(patient)
    page = client.get(reverse("scheduling:appointment_detail", args=[appointment.public_id]))
    html = page.content.decode()
    assert "Reminders and messages" in html
    assert "Booking confirmed" in html and "Reminder 24 h before" in html
    assert html.count("status-badge--success") >= 1 and "Sent" in html and "Pending" in html
    reception = factories.make_staff(Role.RECEPTION, language="en")
    client.logout()
    staff_client = login_staff(reception)
    page = staff_client.get(reverse("scheduling:staff_appointment", args=[appointment.public_id]))
    assert "Booking confirmed" in page.content.decode() and "Sent" in page.content.decode()


def test_message_settings_change_the_channels_and_refuse_nonsense(client):
    patient = factories.make_patient(language="en", phone="")
    client.force_login(patient)
    url = reverse("notifications:preferences")
    page = client.post(url, {"sms_enabled": "on", "language": "ru"})
    assert page.status_code == 200 and "Add a mobile phone number" in page.content.decode()
    page = client.post(url, {"language": "ru"})
    assert "Keep at least one channel on" in page.content.decode()
    assert not NotificationPreference.objects.filter(user=patient).exists()
    page = client.post(url, {"email_enabled": "on", "language": "ru"})
    assert page.status_code == 302
    preference = NotificationPreference.objects.get(user=patient)
    assert preference.email_enabled and not preference.sms_enabled and preference.language == "ru"


def test_due_messages_wait_for_their_time():
    patient = factories.make_patient()
    (row,) = services.notification_send(user_id=patient.pk, event=Event.FOLLOW_UP, object_id=3)
    Message.objects.filter(pk=row.pk).update(due_at=timezone.now() + timedelta(days=1))
    assert services.message_send(message_id=row.pk) == "not_due"
    assert mail.outbox == []


def test_a_doctor_arranges_a_follow_up_invitation_for_later(book, client, login_staff):
    doctor = factories.make_staff(Role.DOCTOR)
    appointment = book(doctor=doctor)
    url = reverse("notifications:follow_up", args=[appointment.public_id])
    staff = login_staff(doctor)
    staff.post(url, {"weeks": "4"})
    assert not Message.objects.filter(event=Event.FOLLOW_UP).exists()  # visit not completed
    for status in ("arrived", "in_progress", "completed"):
        scheduling_services.appointment_set_status(by=None, appointment=appointment, status=status)
    assert staff.post(url, {"weeks": "many"}).status_code == 302
    assert not Message.objects.filter(event=Event.FOLLOW_UP).exists()
    page = staff.post(url, {"weeks": "4"})
    assert page.status_code == 302
    (row,) = Message.objects.filter(event=Event.FOLLOW_UP)
    assert row.user_id == appointment.patient.user_id
    assert (
        timedelta(weeks=4) - timedelta(minutes=5)
        < row.due_at - timezone.now()
        <= timedelta(weeks=4)
    )
    staff.post(url, {"weeks": "0"})
    assert Message.objects.filter(event=Event.FOLLOW_UP).count() == 1  # once per visit
    Message.objects.exclude(event=Event.FOLLOW_UP).delete()  # the booking confirmation
    assert services.messages_sweep() == 0  # not due yet
    assert services.messages_sweep(now=row.due_at + timedelta(seconds=1)) == 1


def test_another_doctor_cannot_arrange_a_follow_up(book, login_staff):
    appointment = book()
    for status in ("arrived", "in_progress", "completed"):
        scheduling_services.appointment_set_status(by=None, appointment=appointment, status=status)
    stranger = factories.make_staff(Role.DOCTOR)
    staff = login_staff(stranger)
    page = staff.post(
        reverse("notifications:follow_up", args=[appointment.public_id]), {"weeks": "0"}
    )
    assert page.status_code == 404
    assert not Message.objects.filter(event=Event.FOLLOW_UP).exists()
