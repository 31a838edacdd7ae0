"""Records' events reach the patient through the notifications outbox, saying only
"open the portal": results released, a prescription request's every change."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import Role
from notifications import services
from notifications.models import Event, Message, ReminderState
from records.models import ReportStatus
from tests import factories
from tests.records import care_helpers
from tests.records.helpers import receive

pytestmark = pytest.mark.django_db


def test_released_results_tell_the_patient_once_without_values(django_capture_on_commit_callbacks):
    patient = factories.make_patient(language="en")
    with django_capture_on_commit_callbacks(execute=True):
        report = receive(patient, "glucose", status=ReportStatus.PRELIMINARY)
    assert not Message.objects.filter(event=Event.RESULTS_READY).exists()  # not released
    with django_capture_on_commit_callbacks(execute=True):
        report = receive(patient, "glucose", external_id="lab-1")
    (row,) = Message.objects.filter(event=Event.RESULTS_READY)
    assert (row.user_id, row.object_type, row.object_id) == (patient.pk, "lab_report", report.pk)
    assert services.message_send(message_id=row.pk) == ReminderState.SENT
    (email,) = mail.outbox
    assert "Your results are ready — open the portal." in email.body
    for observation in report.observations.all():
        assert observation.name not in email.body
        assert str(observation.value_quantity) not in email.body


def test_every_renewal_change_is_told_without_the_medication(django_capture_on_commit_callbacks):
    from records import services_care

    patient = factories.make_patient(language="en")
    doctor = factories.make_staff(Role.DOCTOR)
    rx = care_helpers.prescription(patient, doctor, medication="Metformin")
    with django_capture_on_commit_callbacks(execute=True):
        renewal = care_helpers.renewal(patient, rx)
    with django_capture_on_commit_callbacks(execute=True):
        services_care.renewal_request_start_review(by=doctor, renewal=renewal)
    with django_capture_on_commit_callbacks(execute=True):
        services_care.renewal_request_approve(by=doctor, renewal=renewal)
    rows = Message.objects.filter(event=Event.PRESCRIPTION_STATUS, object_id=renewal.pk)
    assert rows.count() == 3
    for row in rows:
        services.message_send(message_id=row.pk)
    assert len(mail.outbox) == 3
    for email in mail.outbox:
        assert "prescription request" in email.body
        assert "metformin" not in email.body.lower() and "metformin" not in email.subject.lower()
