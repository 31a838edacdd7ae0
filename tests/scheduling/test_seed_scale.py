"""seed_scale builds benchmark data in SQL: right counts, decryptable pooled values,
unique blind indexes, and appointments that never overlap per doctor."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts.models import PatientProfile, Role, StaffProfile, User
from scheduling.management.commands.seed_scale_scheduling import (
    FIRST_F,
    FIRST_M,
    LAST_M,
    SCALE_PASSWORD,
)
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    ScheduleException,
    WorkingHours,
)
from tests import factories

pytestmark = pytest.mark.django_db


def _overlapping_active_pairs() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM scheduling_appointment a JOIN scheduling_appointment b "
            "ON a.doctor_id = b.doctor_id AND a.seat = b.seat AND a.id < b.id "
            "AND a.during && b.during "
            "WHERE a.status IN ('held','booked','confirmed','arrived','in_progress') "
            "AND b.status IN ('held','booked','confirmed','arrived','in_progress')"
        )
        return cursor.fetchone()[0]


def test_seed_scale_tiny_run_builds_consistent_data():
    from django.utils import timezone

    out = io.StringIO()
    call_command("seed_scale", patients=200, doctors=5, appointments=2000, stdout=out)
    text = out.getvalue()
    assert "Scale data ready" in text and " s" in text  # timings are printed

    assert User.objects.filter(role=Role.PATIENT, password=SCALE_PASSWORD).count() == 200
    assert User.objects.filter(role=Role.DOCTOR, password=SCALE_PASSWORD).count() == 5
    assert PatientProfile.objects.count() == 200
    assert StaffProfile.objects.filter(user__role=Role.DOCTOR).count() == 5
    assert Appointment.objects.count() == 2000
    assert WorkingHours.objects.count() == 25  # Mon-Fri for each doctor
    assert ScheduleException.objects.count() == 5  # one upcoming vacation each
    assert _overlapping_active_pairs() == 0

    # Past visits are finished, upcoming ones are booked; both exist.
    now = timezone.now()
    past_statuses = set(
        Appointment.objects.filter(during__fully_lt=(now, None)).values_list("status", flat=True)
    )
    assert past_statuses <= {"completed", "cancelled", "no_show"}
    upcoming = Appointment.objects.filter(during__fully_gt=(None, now))
    assert upcoming.exists()
    assert set(upcoming.values_list("status", flat=True)) <= {"booked", "confirmed", "cancelled"}
    assert Appointment.objects.filter(status=AppointmentStatus.COMPLETED).exists()

    # Pooled ciphertexts decrypt to realistic names; blind indexes are unique per row.
    profile = PatientProfile.objects.order_by("pk").first()
    assert profile.first_name in FIRST_F + FIRST_M
    assert profile.last_name.rstrip("а") in LAST_M
    indexes = list(User.objects.values_list("email_index", flat=True))
    assert len(set(indexes)) == len(indexes) == 205
    snils = [i for i in PatientProfile.objects.values_list("snils_index", flat=True) if i]
    assert len(set(snils)) == len(snils) > 100

    # Scale accounts have no usable password.
    assert not User.objects.first().has_usable_password()

    # Slots come out of the templates, minus what the seeded appointments occupy.
    from datetime import timedelta

    from scheduling.availability import free_slots

    doctor_ids = list(User.objects.filter(role=Role.DOCTOR).values_list("pk", flat=True))
    slots = free_slots(doctor_ids, timezone.localdate() + timedelta(days=1), 14)
    assert sum(len(s) for s in slots.values()) > 0
    busy = set(
        Appointment.objects.filter(
            status__in=["booked", "confirmed"], during__fully_gt=(None, now)
        ).values_list("doctor_id", "during__startswith")
    )
    assert busy
    assert not busy & {(s.doctor_id, s.start) for ss in slots.values() for s in ss}

    # The care-access grants booking would have made.
    doctor = User.objects.get(pk=Appointment.objects.filter(status="completed").first().doctor_id)
    patient = Appointment.objects.filter(status="completed", doctor=doctor).first().patient
    assert doctor.has_perm("accounts.view_patient_record", patient)


def test_seed_scale_refuses_a_database_with_real_users_unless_told():
    factories.make_patient()
    with pytest.raises(CommandError, match="--yes"):
        call_command("seed_scale", patients=10, doctors=1, appointments=10, stdout=io.StringIO())
    call_command(
        "seed_scale", patients=10, doctors=1, appointments=10, yes=True, stdout=io.StringIO()
    )
    assert Appointment.objects.count() == 10


def test_seed_scale_says_when_the_appointments_do_not_fit():
    with pytest.raises(CommandError, match="do not fit"):
        call_command(
            "seed_scale", patients=10, doctors=1, appointments=10_000, days=30, days_ahead=7,
            stdout=io.StringIO(),
        )  # fmt: skip


def test_seed_scale_refuses_production():
    from tests.test_security_settings import _manage, _production_env

    result = _manage("seed_scale", "--patients", "1", "--doctors", "1", env=_production_env())
    assert result.returncode != 0
    assert "refuses to run with DJANGO_ENV=production" in result.stderr
