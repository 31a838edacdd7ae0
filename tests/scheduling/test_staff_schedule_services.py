"""Services that manage calendars (scheduling.schedule): weekly templates with breaks,
time off and extra hours; who may; refusal over booked appointments and cancelling them
for the patients; the free slots follow every change."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone, translation

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from scheduling import availability, hooks, schedule, services
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    ExceptionKind,
    ScheduleException,
    WorkingHours,
)
from tests import factories

pytestmark = pytest.mark.django_db
MSK = ZoneInfo("Europe/Moscow")


@pytest.fixture(autouse=True)
def _english():
    # The services' messages are read in English here, whatever an earlier test left active.
    with translation.override("en"):
        yield


@pytest.fixture
def clinic(db):
    doctor = factories.make_staff(Role.DOCTOR)
    location = factories.make_location(time_zone="Europe/Moscow")
    ctype = factories.make_consultation_type(doctor)
    return doctor, location, ctype


def _tomorrow():
    return timezone.now().astimezone(MSK).date() + timedelta(days=1)


def _local_slots(doctor, day=None, ctype=None):
    day = day or _tomorrow()
    slots = availability.free_slots([doctor.pk], day, 1, consultation_type=ctype)[doctor.pk]
    return [s.local_start().strftime("%H:%M") for s in slots]


def _at(day, hh, mm=0):
    return datetime.combine(day, time(hh, mm), tzinfo=MSK)


def _hours(by, doctor, location, **kw):
    values = {
        "weekday": _tomorrow().weekday(),
        "start": time(9),
        "end": time(12),
        "slot_minutes": 30,
        "breaks": [(time(10, 30), time(11))],
    }
    values.update(kw)
    return schedule.working_hours_set(by=by, doctor=doctor, location=location, **values)


def test_a_doctor_sets_their_hours_and_the_free_slots_follow(clinic):
    doctor, location, _ctype = clinic
    assert _local_slots(doctor) == []
    hours = _hours(doctor, doctor, location)
    assert _local_slots(doctor) == ["09:00", "09:30", "10:00", "11:00", "11:30"]
    event = AuditEvent.objects.get(
        action=AuditAction.CREATE, object_type="scheduling.workinghours", object_id=str(hours.pk)
    )
    assert event.actor == doctor and event.detail["breaks"] == ["10:30-11:00"]

    schedule.working_hours_set(
        by=doctor,
        doctor=doctor,
        location=location,
        weekday=hours.weekday,
        start=time(14),
        end=time(15),
        slot_minutes=20,
        working_hours=hours,
    )
    assert _local_slots(doctor) == ["14:00", "14:20", "14:40"]
    assert WorkingHours.objects.filter(doctor=doctor).count() == 1
    assert not hours.breaks.exists()
    change = AuditEvent.objects.get(action=AuditAction.CHANGE, object_id=str(hours.pk))
    assert change.detail["before"]["hours"] == "09:00-12:00"

    schedule.working_hours_delete(by=doctor, working_hours=hours)
    assert _local_slots(doctor) == []
    assert AuditEvent.objects.filter(
        action=AuditAction.DELETE, object_type="scheduling.workinghours"
    ).exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"start": time(12), "end": time(9)}, "end"),
        ({"breaks": [(time(8), time(9, 30))]}, "breaks"),
        ({"breaks": [(time(9, 30), time(10, 30)), (time(10), time(11))]}, "breaks"),
        ({"slot_minutes": 300}, "slot_minutes"),
        ({"start": time(9), "end": time(9, 20), "breaks": []}, "slot_minutes"),
    ],
)
def test_unworkable_hours_are_refused_with_a_field_error(clinic, changes, field):
    doctor, location, _ctype = clinic
    with pytest.raises(ValidationError) as refused:
        _hours(doctor, doctor, location, **changes)
    assert field in refused.value.error_dict
    assert not WorkingHours.objects.exists()


def test_overlapping_hours_are_refused_even_at_another_location(clinic):
    doctor, location, _ctype = clinic
    _hours(doctor, doctor, location, valid_until=_tomorrow() + timedelta(days=30))
    elsewhere = factories.make_location(code="ekb", time_zone="Asia/Yekaterinburg")
    with pytest.raises(ValidationError, match="overlap"):
        _hours(doctor, doctor, elsewhere, start=time(11), end=time(13), breaks=[])
    # Not overlapping in validity: the template after this one ends may differ.
    next_year = _tomorrow() + timedelta(days=400)
    _hours(doctor, doctor, elsewhere, breaks=[], valid_from=next_year)


def test_only_the_doctor_or_the_clinic_manages_a_calendar(clinic, reception):
    doctor, location, _ctype = clinic
    other_doctor = factories.make_staff(Role.DOCTOR)
    nurse = factories.make_staff(Role.NURSE)
    patient = factories.make_patient()
    for outsider in (other_doctor, nurse, patient):
        with pytest.raises(PermissionDenied):
            _hours(outsider, doctor, location)
    hours = _hours(reception, doctor, location)
    with pytest.raises(PermissionDenied):
        schedule.working_hours_delete(by=other_doctor, working_hours=hours)
    with pytest.raises(PermissionDenied):
        schedule.schedule_exception_add(
            by=other_doctor,
            doctor=doctor,
            kind=ExceptionKind.SICK,
            starts_at=_at(_tomorrow(), 0),
            ends_at=_at(_tomorrow(), 23),
        )
    assert WorkingHours.objects.filter(doctor=doctor).count() == 1


@pytest.fixture
def booked(clinic, reception):
    """Tomorrow 09:00–12:00 with a patient booked at 09:30."""
    doctor, location, ctype = clinic
    _hours(doctor, doctor, location, breaks=[])
    patient = factories.make_patient()
    appointment = services.appointment_book_slot(
        by=reception,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=_at(_tomorrow(), 9, 30),
    )
    return doctor, location, ctype, appointment


def test_time_off_over_a_booking_is_refused_listing_it(booked):
    doctor, _location, _ctype, appointment = booked
    with pytest.raises(schedule.AppointmentsAffected) as refused:
        schedule.schedule_exception_add(
            by=doctor,
            doctor=doctor,
            kind=ExceptionKind.SICK,
            starts_at=_at(_tomorrow(), 0),
            ends_at=_at(_tomorrow() + timedelta(days=1), 0),
            reason="flu",
        )
    assert [a.pk for a in refused.value.appointments] == [appointment.pk]
    message = refused.value.messages[0]
    assert f"{_tomorrow():%Y-%m-%d} 09:30 Europe/Moscow" in message
    assert "Ask reception" in message
    assert not ScheduleException.objects.exists()
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED
    # Time off next to the booking is fine.
    schedule.schedule_exception_add(
        by=doctor,
        doctor=doctor,
        kind=ExceptionKind.BLOCKED,
        starts_at=_at(_tomorrow(), 10),
        ends_at=_at(_tomorrow(), 11),
    )
    assert _local_slots(doctor) == ["09:00", "11:00", "11:30"]


def test_a_doctor_cannot_cancel_patients_by_taking_time_off(booked):
    doctor, _location, _ctype, appointment = booked
    with pytest.raises(PermissionDenied):
        schedule.schedule_exception_add(
            by=doctor,
            doctor=doctor,
            kind=ExceptionKind.VACATION,
            starts_at=_at(_tomorrow(), 0),
            ends_at=_at(_tomorrow(), 23),
            cancel_affected=True,
        )
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED


def test_reception_takes_time_off_and_cancels_the_affected_for_free(booked, reception):
    doctor, _location, _ctype, appointment = booked
    calls = []
    handler = hooks.appointment_cancelled.register(lambda **kw: calls.append(kw))
    try:
        exception = schedule.schedule_exception_add(
            by=reception,
            doctor=doctor,
            kind=ExceptionKind.SICK,
            starts_at=_at(_tomorrow(), 0),
            ends_at=_at(_tomorrow() + timedelta(days=1), 0),
            reason="sick leave",
            cancel_affected=True,
        )
    finally:
        hooks.appointment_cancelled.unregister(handler)
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    assert appointment.cancellation_fee == Decimal("0")
    assert "sick leave" in appointment.cancellation_reason
    assert calls == [
        {
            "appointment_id": appointment.pk,
            "cancellation_fee": Decimal("0"),
            "free": True,
            "by_clinic": True,
        }
    ]
    event = AuditEvent.objects.get(action=AuditAction.CREATE, object_id=str(exception.pk))
    assert event.detail["cancelled_appointments"] == [appointment.pk]
    assert event.reason == "sick leave"
    assert AuditEvent.objects.filter(
        action=AuditAction.CHANGE, object_id=str(appointment.pk), actor=reception
    ).exists()
    assert _local_slots(doctor) == []


def test_an_expired_hold_is_not_in_the_way(clinic, patient):
    doctor, location, ctype = clinic
    _hours(doctor, doctor, location, breaks=[])
    held = services.appointment_hold(
        by=patient,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=_at(_tomorrow(), 9),
    )
    Appointment.objects.filter(pk=held.pk).update(
        hold_expires_at=timezone.now() - timedelta(minutes=1)
    )
    schedule.schedule_exception_add(
        by=doctor,
        doctor=doctor,
        kind=ExceptionKind.BLOCKED,
        starts_at=_at(_tomorrow(), 9),
        ends_at=_at(_tomorrow(), 10),
    )


def test_extra_hours_add_slots_and_removing_them_takes_them_away(clinic):
    doctor, location, _ctype = clinic
    with pytest.raises(ValidationError) as refused:
        schedule.schedule_exception_add(
            by=doctor,
            doctor=doctor,
            kind=ExceptionKind.EXTRA,
            starts_at=_at(_tomorrow(), 18),
            ends_at=_at(_tomorrow(), 19),
        )
    assert "location" in refused.value.error_dict
    extra = schedule.schedule_exception_add(
        by=doctor,
        doctor=doctor,
        kind=ExceptionKind.EXTRA,
        location=location,
        starts_at=_at(_tomorrow(), 18),
        ends_at=_at(_tomorrow(), 19),
        slot_minutes=20,
    )
    assert _local_slots(doctor) == ["18:00", "18:20", "18:40"]
    schedule.schedule_exception_remove(by=doctor, exception=extra)
    assert _local_slots(doctor) == []
    assert AuditEvent.objects.filter(
        action=AuditAction.DELETE, object_type="scheduling.scheduleexception"
    ).exists()


def test_removing_time_off_offers_the_slots_again(clinic):
    doctor, location, _ctype = clinic
    _hours(doctor, doctor, location, breaks=[])
    off = schedule.schedule_exception_add(
        by=doctor,
        doctor=doctor,
        kind=ExceptionKind.VACATION,
        starts_at=_at(_tomorrow(), 0),
        ends_at=_at(_tomorrow() + timedelta(days=7), 0),
    )
    assert _local_slots(doctor) == []
    schedule.schedule_exception_remove(by=doctor, exception=off)
    assert len(_local_slots(doctor)) == 6


def test_a_period_that_ends_before_it_starts_is_refused(clinic):
    doctor, _location, _ctype = clinic
    with pytest.raises(ValidationError) as refused:
        schedule.schedule_exception_add(
            by=doctor,
            doctor=doctor,
            kind=ExceptionKind.BLOCKED,
            starts_at=_at(_tomorrow(), 12),
            ends_at=_at(_tomorrow(), 11),
        )
    assert "ends_at" in refused.value.error_dict
