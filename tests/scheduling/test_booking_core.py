"""The booking core: availability, holds, no double booking under concurrency,
cancellation policy, rescheduling with history, time zones and clock changes."""

from __future__ import annotations

import threading
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Role
from scheduling import availability, hooks, services
from scheduling.models import (
    Appointment,
    AppointmentEventKind,
    AppointmentStatus,
    ExceptionKind,
    LateCancellation,
    ScheduleException,
)
from tests import factories

pytestmark = pytest.mark.django_db
UTC = ZoneInfo("UTC")


@pytest.fixture
def clinic(db):
    doctor = factories.make_staff(Role.DOCTOR)
    location = factories.make_location(time_zone="Europe/Moscow")
    factories.make_working_week(doctor, location, breaks=(("11:00", "11:30"),))
    ctype = factories.make_consultation_type(doctor, free_cancellation_hours=2)
    return doctor, location, ctype


def _tomorrow_slots(doctor, ctype):
    day = timezone.now().astimezone(ZoneInfo("Europe/Moscow")).date() + timedelta(days=1)
    return availability.free_slots([doctor.pk], day, 1, consultation_type=ctype)[doctor.pk]


def test_slots_follow_the_template_and_skip_the_break(clinic):
    doctor, _location, ctype = clinic
    slots = _tomorrow_slots(doctor, ctype)
    local = [slot.local_start().strftime("%H:%M") for slot in slots]
    assert local == ["09:00", "09:30", "10:00", "10:30", "11:30", "12:00", "12:30"]
    assert all(slot.start.utcoffset() == timedelta(0) for slot in slots)  # stored UTC


def test_time_off_and_extra_hours_change_the_slots(clinic, admin_user):
    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

    doctor, location, ctype = clinic
    tz = ZoneInfo("Europe/Moscow")
    day = timezone.now().astimezone(tz).date() + timedelta(days=1)
    ScheduleException.objects.create(
        doctor=doctor,
        kind=ExceptionKind.BLOCKED,
        during=DateTimeTZRange(
            datetime.combine(day, time(9), tz), datetime.combine(day, time(10), tz)
        ),
    )
    ScheduleException.objects.create(
        doctor=doctor,
        kind=ExceptionKind.EXTRA,
        location=location,
        slot_minutes=30,
        during=DateTimeTZRange(
            datetime.combine(day, time(18), tz), datetime.combine(day, time(19), tz)
        ),
    )
    local = [s.local_start().strftime("%H:%M") for s in _tomorrow_slots(doctor, ctype)]
    assert "09:00" not in local and "09:30" not in local
    assert local[-2:] == ["18:00", "18:30"]


def test_hold_then_book_grants_the_doctor_access(clinic, patient):
    doctor, _location, ctype = clinic
    slot = _tomorrow_slots(doctor, ctype)[0]
    held = services.appointment_hold(
        by=patient,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slot.start,
    )
    assert held.status == AppointmentStatus.HELD and held.hold_expires_at > timezone.now()
    assert slot.start not in {s.start for s in _tomorrow_slots(doctor, ctype)}
    booked = services.appointment_book(by=patient, appointment=held)
    assert booked.status == AppointmentStatus.BOOKED and booked.price == ctype.price
    from accounts import policies

    fresh_doctor = type(doctor).objects.get(pk=doctor.pk)
    assert policies.can_view_patient_record(fresh_doctor, patient.patient_profile)


def test_taken_slot_raises_with_nearest_alternatives(clinic, patient, other_patient):
    doctor, _location, ctype = clinic
    slot = _tomorrow_slots(doctor, ctype)[2]
    services.appointment_book_slot(
        by=patient,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slot.start,
    )
    with pytest.raises(services.SlotTaken) as taken:
        services.appointment_book_slot(
            by=other_patient,
            patient=other_patient.patient_profile,
            doctor=doctor,
            consultation_type=ctype,
            starts_at=slot.start,
        )
    alternatives = taken.value.alternatives
    assert alternatives and slot.start not in {a.start for a in alternatives}
    assert min(abs(a.start - slot.start) for a in alternatives) == timedelta(minutes=30)
    assert Appointment.objects.count() == 1


def test_expired_hold_frees_the_slot_by_itself(clinic, patient, other_patient):
    doctor, _location, ctype = clinic
    slot = _tomorrow_slots(doctor, ctype)[0]
    held = services.appointment_hold(
        by=patient,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slot.start,
    )
    Appointment.objects.filter(pk=held.pk).update(
        hold_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert slot.start in {s.start for s in _tomorrow_slots(doctor, ctype)}
    other = services.appointment_book_slot(
        by=other_patient,
        patient=other_patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slot.start,
    )
    held.refresh_from_db()
    assert held.status == AppointmentStatus.EXPIRED and other.status == AppointmentStatus.BOOKED
    with pytest.raises(services.HoldExpired):
        services.appointment_book(by=patient, appointment=held)


def test_the_database_refuses_overlaps_even_without_the_service(clinic, patient, other_patient):
    from django.db import IntegrityError

    doctor, location, ctype = clinic
    slot = _tomorrow_slots(doctor, ctype)[0]
    services.appointment_book_slot(
        by=patient,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slot.start,
    )
    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

    with pytest.raises(IntegrityError, match="appointment_no_overlap"):
        Appointment.objects.create(
            patient=other_patient.patient_profile,
            doctor=doctor,
            location=location,
            consultation_type=ctype,
            status=AppointmentStatus.BOOKED,
            during=DateTimeTZRange(
                slot.start + timedelta(minutes=10), slot.end + timedelta(minutes=10)
            ),
        )


@pytest.mark.django_db(transaction=True)
def test_concurrent_bookings_never_overlap():
    doctor = factories.make_staff(Role.DOCTOR)
    factories.make_working_week(doctor, factories.make_location())
    ctype = factories.make_consultation_type(doctor)
    patients = [factories.make_patient() for _ in range(12)]
    slots = _tomorrow_slots(doctor, ctype)[:3]
    results: list[str] = []
    barrier = threading.Barrier(len(patients))

    def book(patient, slot):
        try:
            barrier.wait()
            services.appointment_book_slot(
                by=patient,
                patient=patient.patient_profile,
                doctor=doctor,
                consultation_type=ctype,
                starts_at=slot.start,
            )
            results.append("booked")
        except services.SlotTaken:
            results.append("taken")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=book, args=(p, slots[i % 3])) for i, p in enumerate(patients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(results)) == ["booked", "taken"]
    assert results.count("booked") == 3
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM scheduling_appointment a JOIN scheduling_appointment b "
            "ON a.doctor_id = b.doctor_id AND a.id < b.id AND a.during && b.during "
            "WHERE a.status IN ('held','booked') AND b.status IN ('held','booked')"
        )
        assert cursor.fetchone()[0] == 0


def test_capacity_override_takes_more_patients_with_a_reason(clinic, admin_user):
    doctor, _location, ctype = clinic
    slot = _tomorrow_slots(doctor, ctype)[0]
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.capacity_override_set(
            by=admin_user,
            doctor=doctor,
            starts_at=slot.start,
            ends_at=slot.end,
            capacity=2,
            reason="  ",
        )
    services.capacity_override_set(
        by=admin_user,
        doctor=doctor,
        starts_at=slot.start,
        ends_at=slot.end,
        capacity=2,
        reason="flu vaccination day",
    )
    first, second, third = (factories.make_patient() for _ in range(3))
    for p in (first, second):
        services.appointment_book_slot(
            by=p,
            patient=p.patient_profile,
            doctor=doctor,
            consultation_type=ctype,
            starts_at=slot.start,
        )
    with pytest.raises(services.SlotTaken):
        services.appointment_book_slot(
            by=third,
            patient=third.patient_profile,
            doctor=doctor,
            consultation_type=ctype,
            starts_at=slot.start,
        )
    assert sorted(Appointment.objects.values_list("seat", flat=True)) == [1, 2]


def _book_in(hours_ahead: float, ctype, doctor, patient):
    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

    start = timezone.now() + timedelta(hours=hours_ahead)
    return Appointment.objects.create(
        patient=patient.patient_profile,
        doctor=doctor,
        location=factories.make_location(),
        consultation_type=ctype,
        status=AppointmentStatus.BOOKED,
        during=DateTimeTZRange(start, start + timedelta(minutes=30)),
    )


def test_cancellation_policy_free_fee_and_not_online(clinic, patient, reception):
    doctor, _location, ctype = clinic
    ctype.free_cancellation_hours = 24
    ctype.late_cancellation_fee = Decimal("500.00")
    ctype.save()
    early = _book_in(48, ctype, doctor, patient)
    quote = services.cancellation_quote(early, by=patient)
    assert quote.allowed and quote.free and quote.fee == 0
    late = _book_in(3, ctype, doctor, patient)
    quote = services.cancellation_quote(late, by=patient)
    assert quote.allowed and not quote.free and quote.fee == Decimal("500.00")
    cancelled = services.appointment_cancel(by=patient, appointment=late, reason="ill")
    assert cancelled.cancellation_fee == Decimal("500.00")
    ctype.late_cancellation = LateCancellation.NOT_ONLINE
    ctype.save()
    strict = _book_in(3, ctype, doctor, patient)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="call the clinic"):
        services.appointment_cancel(by=patient, appointment=strict)
    assert Appointment.objects.get(pk=strict.pk).status == AppointmentStatus.BOOKED
    # Reception may still cancel it for the patient.
    services.appointment_cancel(by=reception, appointment=strict, reason="patient called")


def test_cancel_calls_the_payments_hook_inside_the_transaction(clinic, patient):
    doctor, _location, ctype = clinic
    calls = []
    handler = hooks.appointment_cancelled.register(lambda **kw: calls.append(kw))
    try:
        appointment = _book_in(48, ctype, doctor, patient)
        services.appointment_cancel(by=patient, appointment=appointment)
    finally:
        hooks.appointment_cancelled.unregister(handler)
    assert calls == [
        {
            "appointment_id": appointment.pk,
            "cancellation_fee": Decimal("0"),
            "free": True,
            "by_clinic": False,
        }
    ]


def test_another_patient_cannot_cancel(clinic, patient, other_patient):
    from django.core.exceptions import PermissionDenied

    doctor, _location, ctype = clinic
    appointment = _book_in(48, ctype, doctor, patient)
    with pytest.raises(PermissionDenied):
        services.appointment_cancel(by=other_patient, appointment=appointment)


def test_reschedule_moves_and_keeps_history(clinic, patient):
    doctor, _location, ctype = clinic
    slots = _tomorrow_slots(doctor, ctype)
    appointment = services.appointment_book_slot(
        by=patient,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slots[0].start,
    )
    moved = services.appointment_reschedule(
        by=patient, appointment=appointment, new_start=slots[3].start
    )
    assert moved.pk == appointment.pk and moved.starts_at == slots[3].start
    kinds = list(moved.events.values_list("kind", flat=True))
    assert kinds == [
        AppointmentEventKind.CREATED,
        AppointmentEventKind.STATUS,
        AppointmentEventKind.MOVED,
    ]
    event = moved.events.get(kind=AppointmentEventKind.MOVED)
    assert event.from_during.lower == slots[0].start and event.to_during.lower == slots[3].start
    assert slots[0].start in {s.start for s in _tomorrow_slots(doctor, ctype)}


def test_status_transitions_are_role_checked(clinic, patient, reception):
    from django.core.exceptions import PermissionDenied, ValidationError

    doctor, _location, ctype = clinic
    appointment = _book_in(1, ctype, doctor, patient)
    with pytest.raises(PermissionDenied):
        services.appointment_set_status(
            by=patient, appointment=appointment, status=AppointmentStatus.ARRIVED
        )
    services.appointment_set_status(
        by=reception, appointment=appointment, status=AppointmentStatus.ARRIVED
    )
    with pytest.raises(ValidationError):
        services.appointment_set_status(
            by=reception, appointment=appointment, status=AppointmentStatus.BOOKED
        )
    services.appointment_set_status(
        by=doctor, appointment=appointment, status=AppointmentStatus.COMPLETED
    )
    review = services.review_submit(by=patient, appointment=appointment, rating=5, text="Thank you")
    assert review.status == "pending"


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # London, clocks forward at 01:00 GMT on 29 March 2026: 01:00–02:00 local does not exist.
        ("Europe/London", date(2026, 3, 29), ["00:00", "00:30", "02:00", "02:30"]),
        # Clocks back at 02:00 BST on 25 October 2026: 01:00–02:00 local happens twice;
        # it is offered once.
        (
            "Europe/London",
            date(2026, 10, 25),
            ["00:00", "00:30", "01:00", "01:30", "02:00", "02:30"],
        ),
    ],
)
def test_slots_on_days_the_clocks_change(zone, day, expected):
    doctor = factories.make_staff(Role.DOCTOR)
    location = factories.make_location(code=f"tz-{zone.replace('/', '-').lower()}", time_zone=zone)
    factories.make_working_week(
        doctor, location, start="00:00", end="03:00", weekdays=[day.weekday()]
    )
    ctype = factories.make_consultation_type(doctor)
    slots = availability.free_slots(
        [doctor.pk], day, 1, consultation_type=ctype, now=datetime(2026, 1, 1, tzinfo=UTC)
    )[doctor.pk]
    assert [s.local_start().strftime("%H:%M") for s in slots] == expected
    starts = [s.start for s in slots]
    assert len(set(starts)) == len(starts)
    # Consecutive slots never overlap in real time.
    assert all(
        a.end <= b.start or a.start == b.start for a, b in zip(slots, slots[1:], strict=False)
    )


def test_slot_times_in_two_time_zones(patient):
    doctor = factories.make_staff(Role.DOCTOR)
    ekb = factories.make_location(code="ekb", time_zone="Asia/Yekaterinburg")
    factories.make_working_week(doctor, ekb, start="09:00", end="10:00")
    ctype = factories.make_consultation_type(doctor)
    day = timezone.now().astimezone(ZoneInfo("Asia/Yekaterinburg")).date() + timedelta(days=1)
    slot = availability.free_slots([doctor.pk], day, 1, consultation_type=ctype)[doctor.pk][0]
    assert slot.local_start().strftime("%H:%M") == "09:00"
    assert slot.start.astimezone(UTC).strftime("%H:%M") == "04:00"  # UTC+5
