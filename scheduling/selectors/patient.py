"""Reads for the patient booking flow and "My appointments".

Public reads (specialties, doctors, their approved reviews and free times) hold no
personal data: doctors are staff. Reads of appointments go through
`appointment_get_for`, which answers 404 for missing and forbidden alike and records
the denial.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import Location, Role, Specialty, User
from audit.models import AuditAction
from audit.services import audit_record
from scheduling.availability import Slot, free_slots, nearest_free_slots, slot_for
from scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    ConsultationType,
    DoctorReview,
    WorkingHours,
)

BOOKING_DAYS = 14


# --- Specialties and doctors (public) ---------------------------------------------------


def _bookable_types() -> QuerySet[ConsultationType]:
    return ConsultationType.objects.filter(
        active=True, doctors__role=Role.DOCTOR, doctors__is_active=True
    )


def specialties_bookable() -> QuerySet[Specialty]:
    """Specialties with at least one offered consultation type that a doctor gives."""
    return Specialty.objects.filter(pk__in=_bookable_types().values("specialty_id")).order_by(
        "name_ru" if _russian() else "name_en"
    )


def specialty_get(code: str) -> Specialty:
    specialty = specialties_bookable().filter(code=code).first()
    if specialty is None:
        raise Http404
    return specialty


def _doctors() -> QuerySet[User]:
    approved = Q(reviews_received__status=DoctorReview.Status.APPROVED)
    return (
        User.objects.filter(role=Role.DOCTOR, is_active=True, staff_profile__isnull=False)
        .select_related("staff_profile", "staff_profile__specialty", "staff_profile__location")
        .annotate(
            rating_average=Avg("reviews_received__rating", filter=approved),
            rating_count=Count("reviews_received", filter=approved),
        )
    )


def doctors_for_specialty(specialty: Specialty) -> list[User]:
    types = _bookable_types().filter(specialty=specialty)
    return list(
        _doctors().filter(pk__in=types.values("doctors")).order_by("staff_profile__full_name", "pk")
    )


def doctor_get(doctor_id: int) -> User:
    """A doctor who offers something bookable; 404 otherwise (doctor ids are staff ids,
    not personal data, so nothing is recorded)."""
    doctor = _doctors().filter(pk=doctor_id, pk__in=_bookable_types().values("doctors")).first()
    if doctor is None:
        raise Http404
    return doctor


def consultation_types_of(doctor: User) -> list[ConsultationType]:
    return list(
        ConsultationType.objects.filter(active=True, doctors=doctor)
        .select_related("specialty")
        .order_by("specialty__code", "duration_minutes", "pk")
    )


def doctor_reviews_approved(doctor: User, *, limit: int = 20) -> list[DoctorReview]:
    """Reviews the clinic approved, newest first. No patient names: reviews are shown
    anonymously."""
    return list(
        DoctorReview.objects.filter(doctor=doctor, status=DoctorReview.Status.APPROVED).order_by(
            "-created_at"
        )[:limit]
    )


def doctor_locations(doctor: User) -> list[Location]:
    return list(
        Location.objects.filter(
            pk__in=WorkingHours.objects.filter(doctor=doctor).values("location_id")
        ).order_by("name")
    )


def doctor_time_zone(doctor: User) -> ZoneInfo:
    """The zone of the doctor's calendar days: their location's, else the clinic's."""
    profile = getattr(doctor, "staff_profile", None)
    if profile is not None and profile.location_id:
        return ZoneInfo(profile.location.time_zone)
    hours = WorkingHours.objects.filter(doctor=doctor).select_related("location").first()
    return ZoneInfo(hours.location.time_zone if hours else settings.CLINIC_TIME_ZONE)


# --- Free times ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DayAvailability:
    day: date
    slots: list[Slot]

    @property
    def count(self) -> int:
        return len(self.slots)


@dataclass(frozen=True)
class Availability:
    """Free slots of one doctor for one consultation type over the booking window,
    grouped by local day (each slot's own location's calendar)."""

    days: list[DayAvailability]
    time_zone: ZoneInfo

    def day(self, day: date | None) -> DayAvailability | None:
        for item in self.days:
            if item.day == day:
                return item
        return None

    @property
    def first_free_day(self) -> date | None:
        return next((d.day for d in self.days if d.slots), None)

    def next_slots(self, limit: int = 4) -> list[Slot]:
        return [slot for d in self.days for slot in d.slots][:limit]

    @property
    def zones(self) -> list[str]:
        return sorted({slot.time_zone for d in self.days for slot in d.slots})


def availability_for(
    doctor: User,
    consultation_type: ConsultationType,
    *,
    days: int = BOOKING_DAYS,
    now: datetime | None = None,
) -> Availability:
    now = now or timezone.now()
    tz = doctor_time_zone(doctor)
    today = now.astimezone(tz).date()
    found = free_slots([doctor.pk], today, days, consultation_type=consultation_type, now=now).get(
        doctor.pk, []
    )
    by_day: dict[date, list[Slot]] = {today + timedelta(days=i): [] for i in range(days)}
    for slot in found:
        local_day = slot.local_start().date()
        if local_day in by_day:
            by_day[local_day].append(slot)
    return Availability([DayAvailability(d, s) for d, s in sorted(by_day.items())], tz)


def next_free_slot_by_doctor(
    doctors: list[User], specialty: Specialty, *, days: int = BOOKING_DAYS
) -> dict[int, tuple[Slot, ConsultationType]]:
    """The first free slot of each doctor, for their first consultation type of the
    specialty. One availability search per consultation type, not per doctor."""
    types = (
        _bookable_types()
        .filter(specialty=specialty, doctors__in=[d.pk for d in doctors])
        .distinct()
        .order_by("duration_minutes", "pk")
        .prefetch_related("doctors")
    )
    chosen: dict[int, ConsultationType] = {}
    ids = {d.pk for d in doctors}
    for ctype in types:
        for doctor in ctype.doctors.all():
            if doctor.pk in ids:
                chosen.setdefault(doctor.pk, ctype)
    groups: dict[int, tuple[ConsultationType, list[int]]] = {}
    for doctor_id, ctype in chosen.items():
        groups.setdefault(ctype.pk, (ctype, []))[1].append(doctor_id)
    today = timezone.localdate(timezone=ZoneInfo(settings.CLINIC_TIME_ZONE)) - timedelta(days=1)
    result: dict[int, tuple[Slot, ConsultationType]] = {}
    for ctype, doctor_ids in groups.values():
        for doctor_id, slots in free_slots(
            doctor_ids, today, days + 1, consultation_type=ctype
        ).items():
            if slots:
                result[doctor_id] = (slots[0], ctype)
    return result


def location_get(location_id: int) -> Location:
    return Location.objects.get(pk=location_id)


def slot_get(doctor: User, start: datetime, consultation_type: ConsultationType) -> Slot | None:
    """The slot if it is still free (None if taken, or never offered)."""
    return slot_for(doctor.pk, start, consultation_type)


def alternatives_for(
    doctor: User, around: datetime, consultation_type: ConsultationType, *, limit: int = 6
) -> list[Slot]:
    return nearest_free_slots([doctor.pk], around, consultation_type, limit=limit)


# --- Appointments (the patient's own) -------------------------------------------------------


def _appointments() -> QuerySet[Appointment]:
    return Appointment.objects.select_related(
        "patient",
        "doctor__staff_profile",
        "location",
        "consultation_type__specialty",
    )


def appointments_visible_to(user: User) -> QuerySet[Appointment]:
    """The patient's own appointments; nothing for anyone else."""
    if user.role != Role.PATIENT:
        return Appointment.objects.none()
    return _appointments().filter(patient__user=user)


@dataclass(frozen=True)
class AppointmentLists:
    upcoming: list[Appointment]
    past: list[Appointment]


PAST_LIMIT = 100


def my_appointments(user: User, *, now: datetime | None = None) -> AppointmentLists:
    """Upcoming (soonest first) and past (newest first, the latest PAST_LIMIT). Two
    queries, however many appointments there are."""
    now = now or timezone.now()
    reviewed = DoctorReview.objects.filter(appointment=OuterRef("pk"))
    base = appointments_visible_to(user).annotate(has_review=Exists(reviewed))
    live_hold = Q(status=AppointmentStatus.HELD, hold_expires_at__gt=now)
    upcoming_q = (
        Q(status__in=[s for s in ACTIVE_STATUSES if s != AppointmentStatus.HELD]) | live_hold
    ) & Q(during__endswith__gt=now)
    upcoming = list(base.filter(upcoming_q).order_by("during"))
    past = list(base.exclude(upcoming_q).order_by("-during")[:PAST_LIMIT])
    return AppointmentLists(upcoming, past)


def own_appointment_at(user: User, doctor: User, start: datetime) -> Appointment | None:
    """The patient's own active appointment with this doctor at this start, if any (a
    repeated confirm, e.g. after the back button, finds the booking already made)."""
    return (
        appointments_visible_to(user)
        .filter(doctor=doctor, during__startswith=start, status__in=ACTIVE_STATUSES)
        .first()
    )


def appointment_get_for(user: User, public_id: object) -> Appointment:
    """The appointment if it is the user's own; 404 for missing and forbidden alike.
    A forbidden attempt is recorded against the appointment's patient."""
    appointment = _appointments().filter(public_id=public_id).first()
    if appointment is None:
        raise Http404
    if user.role != Role.PATIENT or appointment.patient.user_id != user.pk:
        audit_record(
            actor=user,
            action=AuditAction.DENIED,
            obj=appointment,
            patient=appointment.patient.user,
            detail={"what": "appointment"},
        )
        raise Http404
    return appointment


def appointment_history(appointment: Appointment) -> list[AppointmentEvent]:
    return list(appointment.events.select_related("by").order_by("at", "pk"))


def appointment_review(appointment: Appointment) -> DoctorReview | None:
    return DoctorReview.objects.filter(appointment=appointment).first()


def appointment_move_count(appointment: Appointment) -> int:
    from scheduling.models import AppointmentEventKind

    return appointment.events.filter(kind=AppointmentEventKind.MOVED).count()


def _russian() -> bool:
    from django.utils.translation import get_language

    return (get_language() or "ru").startswith("ru")
