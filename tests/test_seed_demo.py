"""seed_demo builds the demo network once and is safe to run again."""

from __future__ import annotations

import io

import pytest
from allauth.mfa.models import Authenticator
from django.core.management import call_command

from accounts.models import Location, PatientProfile, Role, Specialty, StaffProfile, User

pytestmark = pytest.mark.django_db


def test_seed_demo_is_complete_and_idempotent(client):
    call_command("seed_demo", stdout=io.StringIO())
    counts = {role: User.objects.filter(role=role).count() for role in Role}
    assert counts == {
        Role.PATIENT: 40,
        Role.DOCTOR: 12,
        Role.NURSE: 1,
        Role.RECEPTION: 1,
        Role.ADMIN: 1,
    }
    assert Specialty.objects.count() == 6
    zones = set(Location.objects.values_list("time_zone", flat=True))
    assert len(zones) == 2
    assert (
        StaffProfile.objects.filter(user__role=Role.DOCTOR, specialty__isnull=False).count() == 12
    )
    # Every staff account can pass the MFA gate.
    staff = User.objects.exclude(role=Role.PATIENT)
    assert Authenticator.objects.filter(user__in=staff, type="totp").count() == staff.count()

    from records.models import LabReport, Prescription

    released = LabReport.objects.filter(released_to_patient_at__isnull=False).count()
    waiting = LabReport.objects.filter(released_to_patient_at__isnull=True).count()
    assert released > 0 and waiting > 0  # results to read, and one for a doctor to review
    prescriptions = Prescription.objects.count()
    assert prescriptions > 0

    call_command("seed_demo", stdout=io.StringIO())
    assert User.objects.count() == sum(counts.values())
    assert PatientProfile.objects.count() == 40
    assert LabReport.objects.count() == released + waiting
    assert Prescription.objects.count() == prescriptions

    # The printed demo password opens a demo patient account.
    from django.conf import settings

    response = client.post(
        "/accounts/login/", {"login": "patient01@clinic.test", "password": settings.DEMO_PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_demo_totp_prints_a_code_that_signs_in(client):
    call_command("seed_demo", stdout=io.StringIO())
    from django.conf import settings

    client.post(
        "/accounts/login/", {"login": "doctor01@clinic.test", "password": settings.DEMO_PASSWORD}
    )
    from tests.conftest import wait_for_fresh_totp_window

    wait_for_fresh_totp_window()
    out = io.StringIO()
    call_command("demo_totp", "doctor01@clinic.test", stdout=out)
    code = out.getvalue().splitlines()[0].strip()
    response = client.post("/accounts/2fa/authenticate/", {"code": code})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def _schedule_counts() -> dict[str, int]:
    from audit.models import AuditEvent
    from scheduling.models import (
        Appointment,
        AppointmentEvent,
        ConsultationType,
        DoctorReview,
        WorkingHours,
        WorkingHoursBreak,
    )

    return {
        "types": ConsultationType.objects.count(),
        "offers": ConsultationType.doctors.through.objects.count(),
        "hours": WorkingHours.objects.count(),
        "breaks": WorkingHoursBreak.objects.count(),
        "appointments": Appointment.objects.count(),
        "events": AppointmentEvent.objects.count(),
        "reviews": DoctorReview.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def test_seed_demo_builds_a_bookable_schedule_once():
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from accounts.policies import RECORD_PERMISSION
    from scheduling.availability import free_slots
    from scheduling.models import (
        Appointment,
        AppointmentStatus,
        ConsultationMode,
        ConsultationType,
        DoctorReview,
        WorkingHours,
    )

    call_command("seed_demo", stdout=io.StringIO())

    # Two types per specialty (in person 30 min, video), one with prepayment, policies vary.
    types = ConsultationType.objects.select_related("specialty")
    assert types.count() == 12
    for specialty in Specialty.objects.all():
        modes = sorted(t.mode for t in types if t.specialty_id == specialty.pk)
        assert modes == [ConsultationMode.IN_PERSON, ConsultationMode.VIDEO]
    assert {t.duration_minutes for t in types if t.mode == ConsultationMode.IN_PERSON} == {30}
    assert all(t.price > 0 for t in types)
    assert types.filter(prepayment_required=True).count() == 1
    assert set(types.values_list("late_cancellation", flat=True)) == {"fee", "not_online"}
    assert len(set(types.values_list("free_cancellation_hours", flat=True))) >= 3

    doctors = User.objects.filter(role=Role.DOCTOR).select_related("staff_profile")
    shifts = set()
    for doctor in doctors:
        offered = set(doctor.consultation_types.values_list("specialty_id", flat=True))
        assert offered == {doctor.staff_profile.specialty_id}
        assert doctor.consultation_types.count() == 2
        hours = WorkingHours.objects.filter(doctor=doctor).prefetch_related("breaks")
        assert sorted(h.weekday for h in hours) == [0, 1, 2, 3, 4]  # Mon-Fri
        assert {h.location_id for h in hours} == {doctor.staff_profile.location_id}
        assert all(len(h.breaks.all()) == 1 for h in hours)  # lunch
        shifts.add(hours[0].start)
        # The template yields slots on the next working days.
        tz = ZoneInfo(doctor.staff_profile.location.time_zone)
        tomorrow = timezone.localdate(timezone=tz) + timedelta(days=1)
        assert free_slots([doctor.pk], tomorrow, 7)[doctor.pk]
    assert len(shifts) == 2  # morning and afternoon

    upcoming = Appointment.objects.filter(status=AppointmentStatus.BOOKED)
    # Seven from scheduling's demo, and the video consultation telemedicine's demo books
    # a few minutes ahead (so the waiting room can be tried at once).
    assert upcoming.count() == 8
    assert upcoming.filter(consultation_type__mode=ConsultationMode.VIDEO).exists()
    now = timezone.now()
    for appointment in upcoming.select_related("doctor", "patient"):
        assert now < appointment.starts_at < now + timedelta(days=14)
        assert not appointment.consultation_type.prepayment_required
        # Booked through the service: the doctor got access to the patient's record.
        assert appointment.doctor.has_perm(RECORD_PERMISSION, appointment.patient)
    past = Appointment.objects.get(status=AppointmentStatus.COMPLETED)
    assert past.starts_at < now
    assert past.doctor.has_perm(RECORD_PERMISSION, past.patient)
    review = DoctorReview.objects.get()
    assert review.appointment == past and review.status == DoctorReview.Status.PENDING

    before = _schedule_counts()
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert _schedule_counts() == before
    assert "0 new appointments" in out.getvalue()
