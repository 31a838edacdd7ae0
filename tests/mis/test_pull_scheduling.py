"""Appointments (and, when the MIS is the master of schedules, its Slots) pulled into
scheduling through its services: booked, cancelled, never twice; a time the portal's
calendar does not have free is set aside with the reason."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from accounts.models import Role
from mis import services_sync
from mis.models import ExternalLink, LinkedKind, QuarantinedResource, QuarantineReason, SyncCursor
from scheduling.models import Appointment, AppointmentSource, AppointmentStatus
from tests import factories
from tests.mis import fhir_data as fd

pytestmark = pytest.mark.django_db
MSK = ZoneInfo("Europe/Moscow")


def _at(days: int, hour: int, minute: int = 0) -> datetime:
    day = (timezone.now().astimezone(MSK) + timedelta(days=days)).date()
    return datetime.combine(day, time(hour, minute), tzinfo=MSK)


def _appointment(aid: str, start: datetime, *, status: str = "booked", minutes: int = 30) -> dict:
    return {
        "resourceType": "Appointment",
        "id": aid,
        "status": status,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
        "participant": [
            {"actor": {"reference": "Patient/mis-anna"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/pr-1"}, "status": "accepted"},
        ],
    }


@pytest.fixture
def setting(db):
    """A portal patient and doctor the MIS knows (SNILS; the doctor's email)."""
    anna = factories.make_patient(snils=fd.SNILS_A)
    doctor = factories.make_staff(Role.DOCTOR, email="sidorov@clinic.example")
    factories.make_working_week(doctor)
    ctype = factories.make_consultation_type(doctor)
    return anna, doctor, ctype


def _pull():
    return services_sync.sync_pull_all(force=True)


def test_an_mis_appointment_is_booked_in_the_portal_once(mis, setting):
    anna, doctor, _ctype = setting
    start = _at(3, 10)
    mis.transaction(
        [
            fd.patient("mis-anna", snils=fd.SNILS_A),
            fd.practitioner("pr-1", email="sidorov@clinic.example"),
            _appointment("ap-1", start),
        ]
    )

    runs = _pull()

    assert runs["Appointment"].created_count == 1
    appointment = Appointment.objects.get()
    assert appointment.patient == anna.patient_profile and appointment.doctor == doctor
    assert appointment.source == AppointmentSource.MIS
    assert appointment.status == AppointmentStatus.BOOKED
    assert appointment.starts_at == start
    # The practitioner was matched to the existing doctor, not created again.
    assert ExternalLink.objects.get(kind=LinkedKind.PRACTITIONER).object_id == doctor.pk

    SyncCursor.objects.update(cursor=None)
    again = _pull()
    assert again["Appointment"].created_count == 0
    assert Appointment.objects.count() == 1


def test_cancelled_in_the_mis_is_cancelled_in_the_portal(mis, setting):
    start = _at(4, 11)
    mis.transaction(
        [
            fd.patient("mis-anna", snils=fd.SNILS_A),
            fd.practitioner("pr-1", email="sidorov@clinic.example"),
            _appointment("ap-2", start),
        ]
    )
    _pull()
    mis.put(_appointment("ap-2", start, status="cancelled"))

    runs = _pull()

    assert runs["Appointment"].updated_count == 1
    assert Appointment.objects.get().status == AppointmentStatus.CANCELLED


def test_a_time_the_portal_has_not_free_is_quarantined_with_the_reason(mis, setting):
    mis.transaction(
        [
            fd.patient("mis-anna", snils=fd.SNILS_A),
            fd.practitioner("pr-1", email="sidorov@clinic.example"),
            _appointment("ap-night", _at(3, 3)),  # the doctor works 09:00-13:00
            _appointment("ap-ok", _at(3, 12)),
        ]
    )

    runs = _pull()

    assert runs["Appointment"].quarantined_count == 1 and runs["Appointment"].created_count == 1
    row = QuarantinedResource.objects.get(resource_id="ap-night")
    assert row.reason == QuarantineReason.REJECTED
    assert "not free" in row.error
    assert Appointment.objects.count() == 1


def test_appointments_of_patients_the_portal_does_not_have_are_skipped(mis, setting):
    mis.transaction(
        [
            fd.practitioner("pr-1", email="sidorov@clinic.example"),
            dict(
                _appointment("ap-x", _at(3, 10)),
                participant=[
                    {"actor": {"reference": "Patient/stranger"}, "status": "accepted"},
                    {"actor": {"reference": "Practitioner/pr-1"}, "status": "accepted"},
                ],
            ),
        ]
    )
    runs = _pull()
    assert runs["Appointment"].skipped_count == 1
    assert not Appointment.objects.exists()


def test_slots_are_ignored_unless_the_mis_is_the_master_of_schedules(mis, setting):
    mis.transaction(
        [
            fd.practitioner("pr-1", email="sidorov@clinic.example"),
            {
                "resourceType": "Schedule",
                "id": "sch-1",
                "actor": [{"reference": "Practitioner/pr-1"}],
            },
            {
                "resourceType": "Slot",
                "id": "slot-1",
                "schedule": {"reference": "Schedule/sch-1"},
                "status": "busy-unavailable",
                "start": _at(5, 10).isoformat(),
                "end": _at(5, 10, 30).isoformat(),
            },
        ]
    )
    runs = _pull()
    assert runs["Slot"].skipped_count == 1 and runs["Schedule"].skipped_count == 1


def test_mis_slots_become_availability_when_the_mis_is_the_master(mis, setting, settings):
    from scheduling.availability import slot_for
    from scheduling.models import ExceptionKind, ScheduleException

    settings.MIS_SCHEDULE_MASTER = True
    _anna, doctor, ctype = setting
    free, busy = _at(6, 15), _at(6, 10)  # 15:00 is outside the portal's own template
    mis.transaction(
        [
            fd.practitioner("pr-1", email="sidorov@clinic.example"),
            {
                "resourceType": "Schedule",
                "id": "sch-1",
                "actor": [{"reference": "Practitioner/pr-1"}],
            },
            {
                "resourceType": "Slot",
                "id": "slot-free",
                "schedule": {"reference": "Schedule/sch-1"},
                "status": "free",
                "start": free.isoformat(),
                "end": (free + timedelta(minutes=30)).isoformat(),
            },
            {
                "resourceType": "Slot",
                "id": "slot-busy",
                "schedule": {"reference": "Schedule/sch-1"},
                "status": "busy",
                "start": busy.isoformat(),
                "end": (busy + timedelta(minutes=30)).isoformat(),
            },
        ]
    )

    runs = _pull()

    assert runs["Slot"].created_count == 2, QuarantinedResource.objects.values_list("error")
    kinds = set(ScheduleException.objects.filter(doctor=doctor).values_list("kind", flat=True))
    assert kinds == {ExceptionKind.EXTRA, ExceptionKind.BLOCKED}
    assert slot_for(doctor.pk, free, ctype) is not None  # offered by the portal now
    assert slot_for(doctor.pk, busy, ctype) is None  # given away in the MIS


def test_an_appointment_the_portal_pushed_is_recognised_not_booked_again(mis, setting):
    from mis.services_push import APPOINTMENT_SYSTEM
    from scheduling import services as booking

    anna, doctor, ctype = setting
    start = _at(3, 9)
    mine = booking.appointment_book_slot(
        by=anna,
        patient=anna.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=start,
    )
    pushed = dict(
        _appointment("ap-pushed", start),
        identifier=[{"system": APPOINTMENT_SYSTEM, "value": str(mine.public_id)}],
    )
    mis.transaction(
        [
            fd.patient("mis-anna", snils=fd.SNILS_A),
            fd.practitioner("pr-1", email="sidorov@clinic.example"),
            pushed,
        ]
    )

    runs = _pull()

    assert runs["Appointment"].created_count == 0 and runs["Appointment"].quarantined_count == 0
    assert Appointment.objects.count() == 1
    link = ExternalLink.objects.get(kind=LinkedKind.APPOINTMENT, value="ap-pushed")
    assert link.object_id == mine.pk
    # A later version that moves it in the MIS does not move the portal's booking.
    mis.put(dict(pushed, start=_at(3, 11).isoformat(), end=_at(3, 11, 30).isoformat()))
    _pull()
    mine.refresh_from_db()
    assert mine.starts_at == start and mine.status == AppointmentStatus.BOOKED
