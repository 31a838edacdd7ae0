"""SMS through the SMS.ru client against a fake SMS.ru server on loopback, and the
fallback to email when SMS fails."""

from __future__ import annotations

from datetime import timedelta

import pytest

from notifications import services
from notifications.channels import ChannelError, SmsRuClient
from notifications.models import NotificationPreference, Reminder, ReminderState
from tests import factories

pytestmark = pytest.mark.django_db


def _sms_patient(*, email: bool):
    patient = factories.make_patient(language="ru")
    NotificationPreference.objects.create(user=patient, email_enabled=email, sms_enabled=True)
    return patient


def _send(appointment, kind="24h", channel="sms"):
    row = Reminder.objects.get(appointment=appointment, kind=kind, channel=channel)
    now = appointment.starts_at - timedelta(hours=23)
    return row, services.reminder_send(reminder_id=row.pk, now=now)


def test_sms_is_sent_through_sms_ru(book, fake_sms_ru, mailoutbox):
    appointment = book(patient=_sms_patient(email=False))
    row, outcome = _send(appointment)
    assert outcome == ReminderState.SENT
    (request,) = fake_sms_ru.requests
    assert request["api_id"] == "test-api-id" and request["json"] == "1"
    assert request["to"] == "79123456789"
    assert "Street 1" in request["msg"] and "/r/" in request["msg"]  # the confirm link
    # The number and the text travel in the POST body, not in the URL.
    assert fake_sms_ru.paths == ["/sms/send"]
    row.refresh_from_db()
    assert row.provider_message_id == "000000-1" and row.sent_channel == "sms"
    assert mailoutbox == []


def test_sms_error_falls_back_to_email(book, fake_sms_ru, mailoutbox):
    fake_sms_ru.mode = "error"
    patient = _sms_patient(email=False)
    appointment = book(patient=patient)
    row, outcome = _send(appointment)
    assert outcome == ReminderState.FELL_BACK
    row.refresh_from_db()
    assert row.sent_channel == "email" and row.sent_at is not None
    assert row.last_error == "sms.ru:207"
    (email,) = mailoutbox
    assert email.to == [patient.email]


def test_sms_error_with_an_email_row_sends_no_second_email(book, fake_sms_ru, mailoutbox):
    fake_sms_ru.mode = "error"
    appointment = book(patient=_sms_patient(email=True))
    row, outcome = _send(appointment)
    assert outcome == ReminderState.FELL_BACK
    assert mailoutbox == []  # the email row of the same kind carries the reminder
    _email_row, email_outcome = _send(appointment, channel="email")
    assert email_outcome == ReminderState.SENT and len(mailoutbox) == 1


def test_unreachable_provider_is_retried_later(book, settings, mailoutbox):
    settings.SMS_RU_BASE_URL = "http://127.0.0.1:9"  # discard port: connection refused
    settings.SMS_RU_API_ID = "test-api-id"
    appointment = book(patient=_sms_patient(email=False))
    row, outcome = _send(appointment)
    assert outcome == ReminderState.RETRIED
    row.refresh_from_db()
    assert row.attempts == 1 and row.claimed_at is None
    assert row.last_error.startswith("sms.ru:") and "7912" not in row.last_error
    assert mailoutbox == []


def test_client_reports_a_refused_request(fake_sms_ru):
    fake_sms_ru.mode = "bad_key"
    client = SmsRuClient(api_id="test-api-id", base_url=fake_sms_ru.url)
    with pytest.raises(ChannelError) as caught:
        client.send(to="79123456789", text="x")
    assert caught.value.code == "sms.ru:200" and caught.value.permanent
