"""Access-matrix rows for the staff schedule pages (loaded by tests/test_access_matrix.py).

Pages of one appointment are tried against the role's own appointment and someone
else's (a denial is recorded with that appointment's patient). Pages of one doctor's
calendar take a doctor id, not a patient: "own" is the actor doctor's calendar, "other"
another doctor's (only reception and admin may open it); a denial there is recorded
without a patient.
"""

from __future__ import annotations

from tests.test_access_matrix import Rule, only


def _own_doctor(world: dict) -> int:
    return world["actors"]["doctor"].pk


def _other_doctor(world: dict) -> int:
    return world["appointments"]["other"].doctor_id


def _doctor(world: dict, role: str, target: str) -> list:
    # Anonymous visitors are tried with ("patient", "other"): any doctor will do.
    return [_own_doctor(world) if target == "own" else _other_doctor(world)]


def _appointment(world: dict, role: str, target: str) -> list:
    appointments = world["appointments"]
    chosen = appointments["own"][role] if target == "own" else appointments["other"]
    return [chosen.public_id]


def _hours(world: dict, role: str, target: str) -> list:
    from scheduling.models import WorkingHours

    doctor_id = _doctor(world, role, target)[0]
    return [doctor_id, WorkingHours.objects.filter(doctor_id=doctor_id).first().pk]


def _exception(world: dict, role: str, target: str) -> list:
    from datetime import timedelta

    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
    from django.utils import timezone

    from scheduling.models import ExceptionKind, ScheduleException

    doctor_id = _doctor(world, role, target)[0]
    start = timezone.now() + timedelta(days=30)
    exception = ScheduleException.objects.filter(doctor_id=doctor_id).first()
    if exception is None:
        exception = ScheduleException.objects.create(
            doctor_id=doctor_id,
            kind=ExceptionKind.BLOCKED,
            during=DateTimeTZRange(start, start + timedelta(hours=1)),
        )
    return [doctor_id, exception.pk]


def _book_patient(world: dict, role: str, target: str) -> list:
    patient = world["own"][role] if target == "own" else world["other"]
    return [_own_doctor(world), patient.patient_profile.pk]


CALENDAR = only("doctor", "reception", "admin")
CLINIC = only("reception", "admin")

MATRIX = {
    "scheduling:staff_schedule": Rule(False, only("doctor", "nurse", "reception", "admin")),
    "scheduling:staff_reviews": Rule(False, CLINIC),
    "scheduling:staff_day": Rule(
        True, own=CALENDAR, other=CLINIC, denial_names_patient=False, args=_doctor
    ),
    "scheduling:staff_week": Rule(
        True, own=CALENDAR, other=CLINIC, denial_names_patient=False, args=_doctor
    ),
    "scheduling:staff_hours": Rule(
        True, own=CALENDAR, other=CLINIC, denial_names_patient=False, args=_doctor
    ),
    "scheduling:staff_hours_edit": Rule(
        True, own=CALENDAR, other=CLINIC, denial_names_patient=False, args=_hours
    ),
    "scheduling:staff_hours_delete": Rule(
        True, own=CALENDAR, other=CLINIC, denial_names_patient=False, args=_hours
    ),
    "scheduling:staff_exceptions": Rule(
        True, own=CALENDAR, other=CLINIC, denial_names_patient=False, args=_doctor
    ),
    "scheduling:staff_exception_delete": Rule(
        True, own=CALENDAR, other=CLINIC, denial_names_patient=False, args=_exception
    ),
    "scheduling:staff_capacity": Rule(False, CLINIC, args=_doctor),
    "scheduling:staff_book": Rule(False, CLINIC, args=_doctor),
    # Booking for a patient: reception and admins, for any patient.
    "scheduling:staff_book_patient": Rule(True, own=CLINIC, other=CLINIC, args=_book_patient),
    # One appointment: its doctor, reception, admins. Moving and cancelling act for the
    # patient: reception and admins only. Nurses have the read-only lists.
    "scheduling:staff_appointment": Rule(True, own=CALENDAR, other=CLINIC, args=_appointment),
    "scheduling:staff_appointment_status": Rule(
        True, own=CALENDAR, other=CLINIC, args=_appointment
    ),
    "scheduling:staff_appointment_cancel": Rule(True, own=CLINIC, other=CLINIC, args=_appointment),
    "scheduling:staff_appointment_reschedule": Rule(
        True, own=CLINIC, other=CLINIC, args=_appointment
    ),
}
