"""telemedicine.demo: rooms for the demo's video appointments and one consultation that
starts in a few minutes, booked through scheduling's services; idempotent."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts import policies
from accounts.models import Role
from scheduling.models import Appointment
from telemedicine.demo import seed_video_demo
from telemedicine.models import Consultation
from tests import factories
from tests.telemedicine.helpers_video import make_appointment, ready_patient

pytestmark = pytest.mark.django_db


def test_demo_video_consultation_opens_now_and_runs_once():
    doctor = factories.make_staff(Role.DOCTOR, email="doc@example.org")
    factories.make_consultation_type(doctor, mode="video", duration_minutes=20)
    patient = ready_patient()
    factories.make_staff(Role.RECEPTION, email="desk@example.org")
    older = make_appointment(ready_patient(), doctor, starts_in=timezone.timedelta(days=3))
    kwargs = {
        "patient_email": patient.email,
        "doctor_email": "doc@example.org",
        "booked_by_email": "desk@example.org",
    }

    counts = seed_video_demo(**kwargs)

    assert counts == {"video consultations": 2}
    assert Consultation.objects.filter(appointment=older).exists()
    made = Appointment.objects.get(patient=patient.patient_profile)
    assert made.status == "booked" and made.consultation_type.mode == "video"
    assert policies.can_join_consultation(patient, made)  # the room is open right away
    assert policies.can_join_consultation(doctor, made)
    assert Consultation.objects.filter(appointment=made).exists()
    assert seed_video_demo(**kwargs) == {"video consultations": 0}
    assert Appointment.objects.filter(patient=patient.patient_profile).count() == 1


def test_demo_without_its_accounts_does_nothing():
    assert seed_video_demo(patient_email="nobody@example.org") == {"video consultations": 0}
