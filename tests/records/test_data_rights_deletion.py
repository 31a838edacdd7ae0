"""Deleting an account (issue 6, item 9): the password and an explicit confirmation or
nothing changes; then the account and its contact data are anonymised, sign-in ends for
good, upcoming appointments are cancelled, and the medical record stays, readable by the
doctor, for the legal retention, which the patient is told. Request and outcome are
both recorded and the audit chain and the access log stay intact."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from accounts import selectors as account_selectors
from accounts.models import PatientProfile, User
from audit.models import AuditAction, AuditEvent
from audit.selectors import access_log_for_patient
from clinic.crypto import decrypt_text
from records import selectors as record_selectors
from records import selectors_care
from records import services_data_rights as services
from records.models import (
    MEDICAL_RECORD_RETENTION_YEARS,
    DataRequest,
    DataRequestKind,
    Document,
    LabReport,
    Prescription,
    Visit,
)
from scheduling.models import AppointmentStatus, LateCancellation
from tests import factories
from tests.records.data_rights_helpers import ADDRESS, EMAIL, PHONE, build_record
from tests.records.helpers_documents import media  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def record(media):  # noqa: F811
    return build_record()


@pytest.fixture(autouse=True)
def _english():
    """Services answer in the active language (Russian by default); these tests read
    the English messages (signed-in pages follow the patient's language, English)."""
    with translation.override("en"):
        yield


def _raw(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def _signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _snapshot(record) -> dict:  # noqa: ANN001
    user = User.objects.get(pk=record.patient.pk)
    profile = PatientProfile.objects.get(pk=record.profile.pk)
    record.appointment.refresh_from_db()
    return {
        "email": user.email,
        "active": user.is_active,
        "password": user.password,
        "phone": profile.phone,
        "address": profile.address,
        "scan": profile.identity_scan.name,
        "appointment": record.appointment.status,
        "requests": DataRequest.objects.count(),
        "sessions": Session.objects.count(),
    }


def test_wrong_password_is_refused_and_nothing_changes(record):
    client = _signed_in(record.patient)
    before = _snapshot(record)
    response = client.post(
        reverse("records:data_deletion"), {"password": "not-my-password", "confirm": "on"}
    )
    assert response.status_code == 400
    assert "The password is not correct." in response.text
    assert _snapshot(record) == before
    denial = AuditEvent.objects.get(action=AuditAction.DENIED, actor=record.patient)
    assert denial.detail == {"what": "data_deletion", "reason": "password"}


def test_missing_confirmation_is_refused_and_nothing_changes(record):
    client = _signed_in(record.patient)
    before = _snapshot(record)
    response = client.post(reverse("records:data_deletion"), {"password": factories.PASSWORD})
    assert response.status_code == 400
    assert "Tick the box to confirm that you want to delete your account." in response.text
    assert _snapshot(record) == before
    with pytest.raises(ValidationError) as refused:
        services.data_deletion_request(
            by=record.patient, profile=record.profile, password=factories.PASSWORD, confirm=False
        )
    assert set(refused.value.error_dict) == {"confirm"}
    assert _snapshot(record) == before


def test_repeated_wrong_passwords_lock_the_page_for_a_while(record):
    for _ in range(services.REAUTH_LIMIT):
        with pytest.raises(ValidationError):
            services.data_deletion_request(
                by=record.patient, profile=record.profile, password="wrong", confirm=True
            )
    with pytest.raises(ValidationError) as refused:
        services.data_deletion_request(
            by=record.patient, profile=record.profile, password=factories.PASSWORD, confirm=True
        )
    assert "Too many wrong passwords" in str(refused.value)
    assert User.objects.get(pk=record.patient.pk).is_active


def test_nobody_else_deletes_an_account(record):
    other = factories.make_patient()
    for intruder in (other, record.doctor):
        with pytest.raises(PermissionDenied):
            services.data_deletion_request(
                by=intruder, profile=record.profile, password=factories.PASSWORD, confirm=True
            )
        assert AuditEvent.objects.filter(
            actor=intruder, action=AuditAction.DENIED, patient=record.patient
        ).exists()
    assert User.objects.get(pk=record.patient.pk).is_active


def test_an_appointment_that_cannot_be_cancelled_online_blocks_the_deletion(record):
    ctype = record.appointment.consultation_type
    ctype.late_cancellation = LateCancellation.NOT_ONLINE
    ctype.free_cancellation_hours = 24 * 7
    ctype.save()
    before = _snapshot(record)
    with pytest.raises(ValidationError) as refused:
        services.data_deletion_request(
            by=record.patient, profile=record.profile, password=factories.PASSWORD, confirm=True
        )
    assert "can no longer be cancelled online" in str(refused.value)
    assert _snapshot(record) == before


def test_deletion_anonymises_the_account_and_keeps_the_medical_record(
    record, django_capture_on_commit_callbacks
):
    from notifications.models import NotificationPreference, Reminder, ReminderState
    from notifications.services import preference_update

    patient, profile = record.patient, record.profile
    preference_update(by=patient, email_enabled=True, sms_enabled=True, language="en")
    TOTP.activate(patient, generate_totp_secret())
    assert Authenticator.objects.filter(user=patient).exists()
    scan_path = profile.identity_scan.path
    browser = _signed_in(patient)
    other_device = _signed_in(patient)
    other_key = other_device.session.session_key
    log_before = list(access_log_for_patient(patient).values_list("pk", flat=True))
    reminders = Reminder.objects.filter(appointment=record.appointment)
    assert reminders.exclude(state=ReminderState.REVOKED).exists()
    counts = {
        model: model.objects.filter(patient=profile).count()
        for model in (Visit, LabReport, Document, Prescription)
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            reverse("records:data_deletion"),
            {"password": factories.PASSWORD, "confirm": "on"},
        )
    assert response.status_code == 302
    assert response["Location"] == reverse("records:data_deletion_done")

    user = User.objects.get(pk=patient.pk)
    profile = PatientProfile.objects.get(pk=profile.pk)
    # The email: an undeliverable placeholder, unique; the old one is gone for good.
    assert user.email.endswith("@deleted.invalid") and user.email != EMAIL
    assert decrypt_text(_raw("accounts_user", "email", user.pk)) == user.email
    assert not User.objects.filter(email=EMAIL).exists()
    assert user.email_index != patient.email_index
    # Contact data cleared (in the database, not only in Python).
    assert profile.phone == "" and profile.address == ""
    assert _raw("accounts_patientprofile", "phone", profile.pk) == ""
    assert _raw("accounts_patientprofile", "address", profile.pk) == ""
    assert not profile.identity_scan
    assert not os.path.exists(scan_path)
    # Sign-in is over: inactive, no usable password, no MFA, no sessions anywhere.
    assert not user.is_active and not user.has_usable_password()
    assert not Authenticator.objects.filter(user=user).exists()
    assert not NotificationPreference.objects.filter(user=user).exists()
    assert not Session.objects.filter(session_key=other_key).exists()
    followed = other_device.get(reverse("records:data_rights"))
    assert followed.status_code == 302 and "/accounts/login/" in followed["Location"]
    for email in (EMAIL, user.email):
        visitor = Client()
        login = visitor.post("/accounts/login/", {"login": email, "password": factories.PASSWORD})
        assert login.status_code == 200, "the sign-in form is shown again with an error"
        assert "_auth_user_id" not in visitor.session
    # Upcoming appointment cancelled through scheduling (reminders revoked with it).
    record.appointment.refresh_from_db()
    assert record.appointment.status == AppointmentStatus.CANCELLED
    assert all(r.state == ReminderState.REVOKED for r in reminders)
    # The medical record and what identifies it are kept, and the doctor still reads it.
    for model, count in counts.items():
        assert model.objects.filter(patient=profile).count() == count
    assert profile.last_name == "Экспортова" and profile.snils and profile.passport
    assert account_selectors.patient_record_get_for(record.doctor, profile.pk) == profile
    report = record_selectors.lab_report_get_for(
        record.doctor, record.report.public_id, audience="staff"
    )
    assert report.observations.count() == 1
    assert record_selectors.visit_get_for(record.doctor, record.visit.public_id).summary
    assert selectors_care.patient_care(record.doctor, profile.pk).prescriptions
    # Recorded: the request and the outcome, with the patient; the chain still verifies
    # and the access log lost nothing.
    request = DataRequest.objects.get(kind=DataRequestKind.DELETION)
    assert request.completed and request.detail["appointments_cancelled"] == 1
    assert str(MEDICAL_RECORD_RETENTION_YEARS) in request.outcome
    asked = AuditEvent.objects.get(action=AuditAction.CREATE, detail__what="data_deletion_request")
    done = AuditEvent.objects.get(action=AuditAction.DELETE, detail__what="data_deletion")
    assert asked.patient_id == done.patient_id == user.pk
    assert asked.seq < done.seq
    assert done.detail["request"] == request.pk
    log_after = set(access_log_for_patient(user).values_list("pk", flat=True))
    assert set(log_before) <= log_after
    call_command("verify_audit_chain")

    # The outcome page, signed out: what was removed, what was kept and why.
    page = browser.get(reverse("records:data_deletion_done"), HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert "Your account is deleted" in page.text
    assert "25 years" in page.text and "323-FZ" in page.text
    assert "Экспортова" not in page.text and PHONE not in page.text and ADDRESS not in page.text


def test_the_deletion_page_explains_retention_and_lists_the_appointments(client, record):
    client.force_login(record.patient)
    response = client.get(reverse("records:data_deletion"))
    assert response.status_code == 200
    assert f"{MEDICAL_RECORD_RETENTION_YEARS} years" in response.text
    assert "323-FZ" in response.text
    assert "These appointments will be cancelled" in response.text


def test_outcome_page_without_a_deletion_explains_the_rule(client, db):
    response = client.get(reverse("records:data_deletion_done"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert "Deleting an account" in response.text
    assert "25 years" in response.text


def test_export_files_are_removed_with_the_account(record, django_capture_on_commit_callbacks):
    job = services.data_export_pdf_request(by=record.patient, profile=record.profile)
    services.data_export_pdf_run(request_id=job.pk)
    job.refresh_from_db()
    path = job.file.path
    with django_capture_on_commit_callbacks(execute=True):
        services.data_deletion_request(
            by=record.patient, profile=record.profile, password=factories.PASSWORD, confirm=True
        )
    job.refresh_from_db()
    assert not job.file and not os.path.exists(path)


def test_a_deleted_account_is_deleted_once(record):
    services.data_deletion_request(
        by=record.patient, profile=record.profile, password=factories.PASSWORD, confirm=True
    )
    user = User.objects.get(pk=record.patient.pk)
    with pytest.raises(PermissionDenied):
        services.data_deletion_request(
            by=user, profile=record.profile, password=factories.PASSWORD, confirm=True
        )
    assert DataRequest.objects.filter(kind=DataRequestKind.DELETION).count() == 1


def test_past_appointments_are_not_touched(record):
    from psycopg.types.range import Range

    from scheduling.models import Appointment

    past = Appointment.objects.filter(pk=record.appointment.pk)
    start = timezone.now() - timedelta(days=3)
    past.update(during=Range(start, start + timedelta(minutes=30), "[)"))
    services.data_deletion_request(
        by=record.patient, profile=record.profile, password=factories.PASSWORD, confirm=True
    )
    record.appointment.refresh_from_db()
    assert record.appointment.status == AppointmentStatus.BOOKED
