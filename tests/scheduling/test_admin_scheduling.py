"""Django admin for scheduling: every model registered; appointments read-only except
actions that call the services; audited views; review moderation; templates, time off
and capacity overrides saved through the services."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.contrib import admin
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from scheduling import services
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    CapacityOverride,
    DoctorReview,
    ScheduleException,
    WorkingHours,
)
from tests import factories

pytestmark = pytest.mark.django_db
MSK = ZoneInfo("Europe/Moscow")


def test_every_scheduling_model_is_registered():
    models = apps.get_app_config("scheduling").get_models()
    assert [m.__name__ for m in models if m not in admin.site._registry] == []


@pytest.fixture
def booked(db):
    doctor = factories.make_staff(Role.DOCTOR)
    factories.make_working_week(doctor)
    ctype = factories.make_consultation_type(doctor)
    patient = factories.make_patient(last_name="Админская")
    day = timezone.now().astimezone(MSK).date() + timedelta(days=1)
    appointment = services.appointment_book_slot(
        by=None,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=datetime.combine(day, time(9), tzinfo=MSK),
    )
    return doctor, ctype, patient, appointment


def test_appointment_pages_are_audited_and_read_only(client, login_staff, admin_user, booked):
    _doctor, _ctype, patient, appointment = booked
    login_staff(admin_user)
    listing = client.get("/admin/scheduling/appointment/")
    assert listing.status_code == 200
    listed = AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.VIEW, object_type="scheduling.appointment"
    ).latest("seq")
    assert listed.detail["list"] is True and str(appointment.pk) in listed.detail["ids"]
    url = f"/admin/scheduling/appointment/{appointment.pk}/change/"
    assert client.get(url).status_code == 200
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.VIEW, patient=patient, object_id=str(appointment.pk)
    ).exists()
    client.post(url, {"status": AppointmentStatus.CANCELLED})
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED
    assert client.get("/admin/scheduling/appointment/add/").status_code == 403


def test_cancel_and_no_show_actions_go_through_the_services(
    client, login_staff, admin_user, booked
):
    doctor, ctype, _patient, appointment = booked
    other = services.appointment_book_slot(
        by=None,
        patient=factories.make_patient().patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=appointment.starts_at + timedelta(minutes=30),
    )
    login_staff(admin_user)
    response = client.post(
        "/admin/scheduling/appointment/",
        {"action": "cancel_for_patient", "_selected_action": [appointment.pk]},
    )
    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    assert appointment.events.filter(by=admin_user, to_status="cancelled").exists()
    client.post(
        "/admin/scheduling/appointment/",
        {"action": "mark_no_show", "_selected_action": [other.pk, appointment.pk]},
    )
    other.refresh_from_db()
    assert other.status == AppointmentStatus.NO_SHOW
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED  # not allowed: left as it was


def test_review_approve_action_is_audited(client, login_staff, admin_user, booked):
    doctor, _ctype, patient, appointment = booked
    Appointment.objects.filter(pk=appointment.pk).update(status=AppointmentStatus.COMPLETED)
    review = DoctorReview.objects.create(
        appointment=appointment, doctor=doctor, rating=4, text="Good"
    )
    login_staff(admin_user)
    assert client.get(f"/admin/scheduling/doctorreview/{review.pk}/change/").status_code == 200
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.VIEW, patient=patient, object_id=str(review.pk)
    ).exists()
    response = client.post(
        "/admin/scheduling/doctorreview/",
        {"action": "approve", "_selected_action": [review.pk]},
    )
    assert response.status_code == 302
    review.refresh_from_db()
    assert review.status == DoctorReview.Status.APPROVED and review.moderated_by == admin_user
    event = AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.CHANGE, object_type="scheduling.doctorreview"
    ).get()
    assert event.detail == {"status": "approved"}


def test_capacity_override_in_admin_needs_a_reason(client, login_staff, admin_user, booked):
    doctor, *_rest = booked
    login_staff(admin_user)
    day = timezone.now().date() + timedelta(days=3)
    form = {
        "doctor": doctor.pk,
        "starts_at_0": day.isoformat(),
        "starts_at_1": "09:00:00",
        "ends_at_0": day.isoformat(),
        "ends_at_1": "10:00:00",
        "capacity": "2",
    }
    refused = client.post("/admin/scheduling/capacityoverride/add/", {**form, "reason": " "})
    assert refused.status_code == 200
    assert not CapacityOverride.objects.exists()
    response = client.post(
        "/admin/scheduling/capacityoverride/add/", {**form, "reason": "vaccines"}
    )
    assert response.status_code == 302, response.content[:3000]
    override = CapacityOverride.objects.get()
    assert override.reason == "vaccines" and override.created_by == admin_user
    assert AuditEvent.objects.filter(
        action=AuditAction.CREATE, object_id=str(override.pk), reason="vaccines"
    ).exists()


def test_working_hours_in_admin_are_saved_by_the_service(client, login_staff, admin_user):
    doctor = factories.make_staff(Role.DOCTOR)
    location = factories.make_location()
    login_staff(admin_user)
    form = {
        "doctor": doctor.pk,
        "location": location.pk,
        "weekday": "2",
        "start": "09:00",
        "end": "12:00",
        "slot_minutes": "20",
        "breaks": "10:00–10:20",
    }
    bad = client.post("/admin/scheduling/workinghours/add/", {**form, "breaks": "08:00–08:30"})
    assert bad.status_code == 200 and "outside the working hours" in bad.content.decode()
    assert client.post("/admin/scheduling/workinghours/add/", form).status_code == 302
    hours = WorkingHours.objects.get()
    assert [(b.start, b.end) for b in hours.breaks.all()] == [(time(10), time(10, 20))]
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.CREATE, object_id=str(hours.pk)
    ).exists()
    url = f"/admin/scheduling/workinghours/{hours.pk}/change/"
    assert "10:00–10:20" in client.get(url).content.decode()
    response = client.post(url, {**form, "end": "11:00", "breaks": ""})
    assert response.status_code == 302
    hours.refresh_from_db()
    assert hours.end == time(11) and not hours.breaks.exists()
    client.post(f"/admin/scheduling/workinghours/{hours.pk}/delete/", {"post": "yes"})
    assert not WorkingHours.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.DELETE, object_id=str(hours.pk)).exists()


def test_time_off_in_admin_refuses_over_bookings_unless_cancelling(
    client, login_staff, admin_user, booked
):
    doctor, _ctype, _patient, appointment = booked
    login_staff(admin_user)
    local = appointment.starts_at.astimezone(MSK)
    form = {
        "doctor": doctor.pk,
        "kind": "vacation",
        "starts_at_0": local.date().isoformat(),
        "starts_at_1": "00:00:00",
        "ends_at_0": local.date().isoformat(),
        "ends_at_1": "23:00:00",
        "slot_minutes": "30",
        "reason": "holiday",
    }
    refused = client.post("/admin/scheduling/scheduleexception/add/", form)
    assert refused.status_code == 200
    assert "overlaps 1 booked appointment" in refused.content.decode()
    assert not ScheduleException.objects.exists()
    done = client.post(
        "/admin/scheduling/scheduleexception/add/", {**form, "cancel_affected": "on"}
    )
    assert done.status_code == 302
    assert ScheduleException.objects.filter(doctor=doctor, reason="holiday").exists()
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
