"""Reminder rows: scheduled idempotently, revoked, sent exactly once, skipped when late,
and free of medical content."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.utils import timezone

from notifications import compose, services
from notifications.channels import EmailChannel
from notifications.models import NotificationPreference, Reminder, ReminderState
from scheduling import services as scheduling_services
from tests import factories

pytestmark = pytest.mark.django_db


def _make_due(appointment) -> None:
    Reminder.objects.filter(appointment=appointment).update(
        due_at=timezone.now() - timedelta(minutes=1)
    )


def test_booking_creates_the_rows_and_scheduling_again_changes_nothing(book):
    appointment = book()
    rows = Reminder.objects.filter(appointment=appointment)
    assert sorted(rows.values_list("kind", "channel", "state")) == [
        ("24h", "email", "pending"),
        ("2h", "email", "pending"),
    ]
    by_kind = {row.kind: row for row in rows}
    assert by_kind["24h"].due_at == appointment.starts_at - timedelta(hours=24)
    assert by_kind["2h"].due_at == appointment.starts_at - timedelta(hours=2)
    ids = sorted(rows.values_list("pk", flat=True))
    services.reminders_schedule_for(appointment_id=appointment.pk)
    services.reminders_schedule_for(appointment_id=appointment.pk)
    assert (
        sorted(Reminder.objects.filter(appointment=appointment).values_list("pk", flat=True)) == ids
    )


def test_offsets_come_from_settings_and_sms_rows_follow_the_preference(book, settings):
    settings.REMINDER_OFFSETS_HOURS = (48, 3)
    patient = factories.make_patient()
    NotificationPreference.objects.create(user=patient, email_enabled=True, sms_enabled=True)
    appointment = book(patient=patient)
    kinds = set(Reminder.objects.filter(appointment=appointment).values_list("kind", "channel"))
    # The 48 h reminder of an appointment less than 48 h away is already past: no row.
    assert {kind for kind, _ in kinds} <= {"48h", "3h"} and ("3h", "sms") in kinds
    assert ("3h", "email") in kinds


def test_cancelling_revokes_pending_reminders(book):
    appointment = book()
    assert services.reminders_revoke_for(appointment_id=appointment.pk) == 2
    assert set(Reminder.objects.values_list("state", flat=True)) == {ReminderState.REVOKED}
    # Through scheduling's service and the hook registered in ready():
    other = book()
    scheduling_services.appointment_cancel(by=None, appointment=other)
    assert set(Reminder.objects.filter(appointment=other).values_list("state", flat=True)) == {
        ReminderState.REVOKED
    }


def test_rescheduling_plans_the_rows_for_the_new_time(book):
    appointment = book()
    new_start = appointment.starts_at + timedelta(hours=1)
    scheduling_services.appointment_reschedule(
        by=None, appointment=appointment, new_start=new_start
    )
    rows = Reminder.objects.filter(appointment=appointment)
    assert rows.count() == 2
    for row in rows:
        assert row.state == ReminderState.PENDING
        assert row.appointment_starts_at == new_start


def test_sweep_twice_sends_once(book, celery_eager, mailoutbox, django_capture_on_commit_callbacks):
    appointment = book()
    _make_due(appointment)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.reminders_sweep() == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert services.reminders_sweep() == 0
    assert len(mailoutbox) == 2  # the 24 h and the 2 h rows, one email each
    assert set(Reminder.objects.values_list("state", flat=True)) == {ReminderState.SENT}
    # A redelivered message for a sent row sends nothing.
    for row in Reminder.objects.all():
        assert services.reminder_send(reminder_id=row.pk) == "busy"
    assert len(mailoutbox) == 2


def test_a_revoked_reminder_is_not_sent(book, mailoutbox):
    appointment = book()
    _make_due(appointment)
    services.reminders_revoke_for(appointment_id=appointment.pk)
    row = Reminder.objects.filter(appointment=appointment).first()
    assert services.reminder_send(reminder_id=row.pk) == "busy"
    assert mailoutbox == []


@pytest.mark.parametrize(
    ("kind", "left", "expected"),
    [
        ("2h", timedelta(minutes=20), ReminderState.SKIPPED_LATE),
        ("2h", timedelta(minutes=40), ReminderState.SENT),
        ("24h", timedelta(minutes=90), ReminderState.SKIPPED_LATE),
        ("24h", timedelta(hours=3), ReminderState.SENT),
    ],
)
def test_late_reminders_are_skipped_and_recorded(book, mailoutbox, kind, left, expected):
    appointment = book()
    row = Reminder.objects.get(appointment=appointment, kind=kind)
    outcome = services.reminder_send(reminder_id=row.pk, now=appointment.starts_at - left)
    row.refresh_from_db()
    assert outcome == expected == row.state
    if expected == ReminderState.SKIPPED_LATE:
        assert row.last_error == "late" and row.sent_at is None and mailoutbox == []
    else:
        assert row.sent_at is not None and len(mailoutbox) == 1


@pytest.mark.parametrize("language", ["ru", "en"])
def test_messages_carry_no_medical_content(book, mailoutbox, language):
    patient = factories.make_patient(language=language)
    appointment = book(
        patient=patient, ctype_fields={"name_ru": "Кардиология", "name_en": "Cardiology"}
    )
    row = Reminder.objects.get(appointment=appointment, kind="24h")
    now = appointment.starts_at - timedelta(hours=23)
    assert services.reminder_send(reminder_id=row.pk, now=now) == ReminderState.SENT
    (email,) = mailoutbox
    message = compose.reminder_message(appointment, language=language)
    for text in (email.subject, email.body, message.sms_text):
        for forbidden in (
            "Кардиология",
            "Cardiology",
            "Терапевт",
            "General practitioner",
            "Doctor",
            appointment.patient.last_name,
        ):
            assert forbidden not in text
    assert email.to == [patient.email]
    assert "Street 1" in email.body and "/appointments/" in email.body
    assert "Europe/Moscow" in email.body
    assert (
        "Напоминаем о вашей записи" if language == "ru" else "reminder of your appointment"
    ) in email.body
    assert email.body.count("/r/") == 3  # confirm, reschedule, cancel
    local = appointment.starts_at.astimezone(appointment.location.tzinfo)
    assert local.strftime("%H:%M") in email.body


def test_every_notifications_model_is_registered():
    models = apps.get_app_config("notifications").get_models()
    assert [m.__name__ for m in models if m not in admin.site._registry] == []


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_send_one_email(book, mailoutbox, monkeypatch):
    appointment = book()
    _make_due(appointment)
    row = Reminder.objects.filter(appointment=appointment).first()
    original = EmailChannel.send

    def slow_send(self, **kwargs):
        import time

        time.sleep(0.3)
        return original(self, **kwargs)

    monkeypatch.setattr(EmailChannel, "send", slow_send)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def worker() -> None:
        try:
            barrier.wait()
            outcomes.append(services.reminder_send(reminder_id=row.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["busy", ReminderState.SENT]
    assert len(mailoutbox) == 1
    row.refresh_from_db()
    assert row.state == ReminderState.SENT and row.attempts == 1
