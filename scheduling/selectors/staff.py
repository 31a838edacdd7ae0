"""Reads for the staff schedule pages: doctors' days and weeks, appointments, templates,
exceptions, capacity overrides and reviews waiting for moderation.

Who may see what (the calendar rules below mirror accounts.policies and belong there):
- a doctor: their own calendar, to view and to manage;
- reception and administrators: every doctor's calendar, to view and to manage, and
  booking, moving, cancelling and checking in for patients;
- a nurse: the day lists of their department's doctors, read-only.
Patients never reach these pages. Every refusal is a 404 and is recorded; every list of
appointments shown is recorded with the ids on it, every single appointment with its
patient. Times are shown in each location's own time zone, named.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts import policies
from accounts import selectors as account_selectors
from accounts.models import PatientProfile, Role, User
from audit.models import AuditAction
from audit.services import audit_record
from scheduling.availability import Slot, free_slots, local_to_utc
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    CapacityOverride,
    ConsultationType,
    DoctorReview,
    ExceptionKind,
    ScheduleException,
    WorkingHours,
)
from scheduling.services import TRANSITIONS

CLINIC_ROLES = frozenset({Role.RECEPTION, Role.ADMIN})
TIME_OFF = (ExceptionKind.VACATION, ExceptionKind.SICK, ExceptionKind.BLOCKED)

# Status → badge variant (docs/frontend.md): the word is always shown with its glyph.
STATUS_VARIANT = {
    AppointmentStatus.HELD: "pending",
    AppointmentStatus.BOOKED: "neutral",
    AppointmentStatus.CONFIRMED: "info",
    AppointmentStatus.ARRIVED: "warning",
    AppointmentStatus.IN_PROGRESS: "pending",
    AppointmentStatus.COMPLETED: "success",
    AppointmentStatus.CANCELLED: "danger",
    AppointmentStatus.NO_SHOW: "danger",
    AppointmentStatus.EXPIRED: "neutral",
}
# What staff press to move an appointment on, in the order the buttons appear.
ACTION_LABELS = {
    AppointmentStatus.CONFIRMED: _("Confirm"),
    AppointmentStatus.ARRIVED: _("Check in"),
    AppointmentStatus.IN_PROGRESS: _("Start"),
    AppointmentStatus.COMPLETED: _("Complete"),
    AppointmentStatus.NO_SHOW: _("No-show"),
}


# --- Who may ---------------------------------------------------------------------------


# The rules themselves live in accounts.policies, the one place that decides access.
may_view_calendar = policies.can_view_calendar
may_manage_calendar = policies.can_manage_calendar
may_act_for_patients = policies.can_act_for_patients
may_use_staff_schedule = policies.can_use_staff_schedule


def _active(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def _department_id(user: Any) -> int | None:
    profile = getattr(user, "staff_profile", None)
    return profile.department_id if profile is not None else None


def deny(user: Any, what: str, *, obj: Any = None, patient: Any = None, **detail: Any) -> Http404:
    """A refusal: recorded (with the patient concerned, if any) and answered like a page
    that does not exist, so ids cannot be probed."""
    audit_record(
        actor=user,
        action=AuditAction.DENIED,
        obj=obj,
        object_type="" if obj is not None else "page",
        patient=patient,
        detail={"what": what, **detail},
    )
    return Http404()


def doctor_get_for(user: Any, doctor_id: int, *, manage: bool = False) -> User:
    """The doctor whose calendar is asked for: 404 (recorded) if missing or not allowed."""
    doctor = (
        User.objects.select_related(
            "staff_profile__location", "staff_profile__specialty", "staff_profile__department"
        )
        .filter(pk=doctor_id, role=Role.DOCTOR, is_active=True)
        .first()
    )
    allowed = may_manage_calendar if manage else may_view_calendar
    if doctor is None or not allowed(user, doctor):
        raise deny(user, "calendar", doctor=doctor_id, manage=manage, found=doctor is not None)
    return doctor


# --- Time zones ------------------------------------------------------------------------


def doctor_time_zone(doctor: User) -> str:
    """The zone a doctor's days are counted in: their location's, else that of their
    first working-hours location, else the clinic network's."""
    profile = getattr(doctor, "staff_profile", None)
    if profile is not None and profile.location_id:
        return profile.location.time_zone
    hours = WorkingHours.objects.filter(doctor=doctor).select_related("location").first()
    return hours.location.time_zone if hours else settings.CLINIC_TIME_ZONE


def viewer_time_zone(user: Any) -> str:
    profile = getattr(user, "staff_profile", None)
    if profile is not None and profile.location_id:
        return profile.location.time_zone
    return settings.CLINIC_TIME_ZONE


def _offset(tz_name: str, at: datetime) -> str:
    offset = at.astimezone(ZoneInfo(tz_name)).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def zone_label(tz_name: str, at: datetime | None = None, until: datetime | None = None) -> str:
    """“Asia/Yekaterinburg (UTC+05:00)”: the zone by name and its offset at that moment;
    across a clock change, both offsets (“Europe/London (UTC+01:00 → UTC+00:00)”)."""
    at = at or timezone.now()
    start = _offset(tz_name, at)
    end = _offset(tz_name, until) if until is not None else start
    return f"{tz_name} ({start})" if end == start else f"{tz_name} ({start} → {end})"


def local_today(tz_name: str) -> date:
    return timezone.now().astimezone(ZoneInfo(tz_name)).date()


def local_day_of(instant: datetime, tz_name: str) -> date:
    return instant.astimezone(ZoneInfo(tz_name)).date()


def describe_start(appointment: Appointment) -> str:
    """“2026-03-14 09:00 Asia/Yekaterinburg (UTC+05:00)”, in the location's zone."""
    tz_name = appointment.location.time_zone
    local = appointment.starts_at.astimezone(ZoneInfo(tz_name))
    return f"{local:%Y-%m-%d %H:%M} {zone_label(tz_name, appointment.starts_at)}"


def day_bounds(day: date, tz_name: str) -> tuple[datetime, datetime]:
    tz = ZoneInfo(tz_name)
    return (
        datetime.combine(day, time.min, tzinfo=tz),
        datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz),
    )


# --- Appointment rows --------------------------------------------------------------------


@dataclass
class AppointmentRow:
    appointment: Appointment
    starts: datetime  # aware, in the location's zone
    ends: datetime
    zone: str
    tz_name: str
    patient_name: str
    patient_id: int
    record_link: bool
    variant: str
    actions: list[tuple[str, str]]
    doctor_name: str = ""

    @property
    def status_label(self) -> str:
        return self.appointment.get_status_display()


def actions_for(user: Any, appointment: Appointment) -> list[tuple[str, str]]:
    """Status changes this user may make now (scheduling.services.TRANSITIONS). Nurses'
    lists are read-only."""
    if not _active(user) or user.role == Role.NURSE:
        return []
    if user.role == Role.DOCTOR and appointment.doctor_id != user.pk:
        return []
    allowed = TRANSITIONS.get(appointment.status, {})
    return [
        (status, str(label))
        for status, label in ACTION_LABELS.items()
        if user.role in allowed.get(status, ())
    ]


def _row(user: Any, appointment: Appointment, *, record_link: bool) -> AppointmentRow:
    tz = appointment.location.tzinfo
    profile = appointment.patient
    doctor_profile = getattr(appointment.doctor, "staff_profile", None)
    return AppointmentRow(
        appointment=appointment,
        starts=appointment.starts_at.astimezone(tz),
        ends=appointment.ends_at.astimezone(tz),
        zone=zone_label(appointment.location.time_zone, appointment.starts_at, appointment.ends_at),
        tz_name=appointment.location.time_zone,
        patient_name=profile.full_name(),
        patient_id=profile.pk,
        record_link=record_link,
        variant=STATUS_VARIANT.get(appointment.status, "neutral"),
        actions=actions_for(user, appointment),
        doctor_name=doctor_profile.full_name if doctor_profile else "",
    )


def _appointments_between(doctor_ids: Iterable[int], start: datetime, end: datetime) -> QuerySet:
    now = timezone.now()
    return (
        Appointment.objects.filter(doctor_id__in=list(doctor_ids), during__overlap=(start, end))
        .exclude(status=AppointmentStatus.EXPIRED)
        .exclude(status=AppointmentStatus.HELD, hold_expires_at__lte=now)
        .select_related("patient__user", "location", "consultation_type", "doctor__staff_profile")
        .order_by("during", "pk")
    )


def _record_list(user: Any, what: str, rows: list[AppointmentRow], **detail: Any) -> None:
    audit_record(
        actor=user,
        action=AuditAction.VIEW,
        object_type=Appointment._meta.label_lower,
        detail={
            "what": what,
            "list": True,
            "ids": [str(r.appointment.pk) for r in rows][:200],
            **detail,
        },
    )


@dataclass
class DayList:
    doctor: User
    day: date
    time_zone: str
    zone: str
    rows: list[AppointmentRow]
    today: bool

    @property
    def previous(self) -> date:
        return self.day - timedelta(days=1)

    @property
    def next(self) -> date:
        return self.day + timedelta(days=1)


def day_list(user: Any, doctor: User, day: date | None = None) -> DayList:
    """A doctor's appointments of one day (their zone's calendar day), with statuses
    and the status changes the viewer may make. A fixed number of queries."""
    tz_name = doctor_time_zone(doctor)
    today = local_today(tz_name)
    day = day or today
    start, end = day_bounds(day, tz_name)
    # The doctor's own patients are theirs through the booking (care access grant); a
    # nurse's through their department. Reception sees no records.
    department = _department_id(user) if user.role == Role.NURSE else None
    rows = [
        _row(
            user,
            appointment,
            record_link=(user.role == Role.DOCTOR and appointment.doctor_id == user.pk)
            or (department is not None and appointment.patient.department_id == department),
        )
        for appointment in _appointments_between([doctor.pk], start, end)
    ]
    _record_list(user, "day", rows, doctor=doctor.pk, date=day.isoformat())
    return DayList(
        doctor=doctor,
        day=day,
        time_zone=tz_name,
        zone=zone_label(tz_name, start),
        rows=rows,
        today=day == today,
    )


def department_today(user: Any) -> DayList | None:
    """A nurse's today: the appointments of their department's doctors, read-only."""
    department = _department_id(user)
    if user.role != Role.NURSE or department is None:
        return None
    tz_name = viewer_time_zone(user)
    day = local_today(tz_name)
    start, end = day_bounds(day, tz_name)
    doctors = User.objects.filter(
        role=Role.DOCTOR, is_active=True, staff_profile__department_id=department
    ).values_list("pk", flat=True)
    rows = [
        _row(user, a, record_link=a.patient.department_id == department)
        for a in _appointments_between(doctors, start, end)
    ]
    _record_list(user, "department_day", rows, department=department, date=day.isoformat())
    return DayList(
        doctor=user,
        day=day,
        time_zone=tz_name,
        zone=zone_label(tz_name, start),
        rows=rows,
        today=True,
    )


def doctors_visible_to(user: Any) -> QuerySet[User]:
    """Doctors whose calendars the user may open (the picker of reception and admins)."""
    doctors = User.objects.filter(role=Role.DOCTOR, is_active=True).select_related(
        "staff_profile__specialty", "staff_profile__location"
    )
    if not _active(user):
        return doctors.none()
    if user.role == Role.DOCTOR:
        return doctors.filter(pk=user.pk)
    if user.role == Role.NURSE:
        department = _department_id(user)
        return (
            doctors.filter(staff_profile__department_id=department)
            if department
            else doctors.none()
        )
    if user.role in CLINIC_ROLES:
        return doctors.order_by("staff_profile__full_name")
    return doctors.none()


# --- Week grid -----------------------------------------------------------------------------


@dataclass
class WeekCell:
    state: str  # free, booked, blocked, past
    variant: str
    label: str
    appointment: Appointment | None = None
    seats_free: int = 0


@dataclass
class WeekGrid:
    doctor: User
    start: date
    days: list[date]
    rows: list[tuple[str, list[WeekCell | None]]]
    zones: list[str]
    time_zone: str

    @property
    def previous(self) -> date:
        return self.start - timedelta(days=7)

    @property
    def next(self) -> date:
        return self.start + timedelta(days=7)


CELL = {
    "free": ("success", _("Free")),
    "booked": ("info", _("Booked")),
    "blocked": ("danger", _("Blocked")),
    "past": ("neutral", _("Past")),
}


def _template_starts(hours: WorkingHours, day: date) -> list[tuple[datetime, datetime]]:
    """(start, end) in UTC of the slots a template offers on a day, breaks left out —
    the same cutting as scheduling.availability, without time off or bookings."""
    tz = ZoneInfo(hours.location.time_zone)
    pieces = [(hours.start, hours.end)]
    for brk in sorted(hours.breaks.all(), key=lambda b: b.start):
        cut = []
        for s, e in pieces:
            if brk.end <= s or brk.start >= e:
                cut.append((s, e))
                continue
            if brk.start > s:
                cut.append((s, brk.start))
            if brk.end < e:
                cut.append((brk.end, e))
        pieces = cut
    found = []
    for s, e in pieces:
        minute = s.hour * 60 + s.minute
        end_minute = e.hour * 60 + e.minute
        while minute + hours.slot_minutes <= end_minute:
            utc = local_to_utc(day, time(minute // 60, minute % 60), tz)
            if utc is not None:
                found.append((utc, utc + timedelta(minutes=hours.slot_minutes)))
            minute += hours.slot_minutes
    return found


def week_grid(user: Any, doctor: User, start: date | None = None) -> WeekGrid:
    """Seven days of a doctor's slots — free, booked, blocked (time off) or past — in
    each location's own wall-clock time. A fixed number of queries."""
    tz_name = doctor_time_zone(doctor)
    start = start or local_today(tz_name)
    days = [start + timedelta(days=i) for i in range(7)]
    window_start, _unused = day_bounds(start, tz_name)
    window_end = day_bounds(days[-1], tz_name)[1]
    margin = timedelta(days=1)
    now = timezone.now()

    # Every slot the calendar offers this week, past ones too, with the seats left.
    offered = free_slots([doctor.pk], start, 7, now=window_start - 2 * margin, include_full=True)[
        doctor.pk
    ]
    slots: dict[datetime, tuple[datetime, str, int]] = {
        s.start: (s.end, s.time_zone, s.seats_free) for s in offered
    }
    templates = (
        WorkingHours.objects.filter(doctor=doctor)
        .select_related("location")
        .prefetch_related("breaks")
    )
    for hours in templates:
        for day in days:
            valid = (hours.valid_from is None or hours.valid_from <= day) and (
                hours.valid_until is None or hours.valid_until >= day
            )
            if valid and day.weekday() == hours.weekday:
                for s, e in _template_starts(hours, day):
                    slots.setdefault(s, (e, hours.location.time_zone, 1))
    time_off = [
        (x.during.lower, x.during.upper)
        for x in ScheduleException.objects.filter(
            doctor=doctor,
            kind__in=TIME_OFF,
            during__overlap=(window_start - margin, window_end + margin),
        )
    ]
    appointments = list(
        Appointment.objects.filter(
            doctor=doctor,
            during__overlap=(window_start - margin, window_end + margin),
        )
        .exclude(
            status__in=[
                AppointmentStatus.EXPIRED,
                AppointmentStatus.CANCELLED,
                AppointmentStatus.NO_SHOW,
            ]
        )
        .exclude(status=AppointmentStatus.HELD, hold_expires_at__lte=now)
        .select_related("location")
    )
    for a in appointments:  # booked outside the template (moved, extra hours since removed)
        slots.setdefault(a.starts_at, (a.ends_at, a.location.time_zone, 0))

    cells: dict[tuple[date, str], WeekCell] = {}
    zones: set[str] = set()
    for s, (e, zone, seats) in slots.items():
        local = s.astimezone(ZoneInfo(zone))
        if local.date() not in days:
            continue
        zones.add(zone)
        booked = [a for a in appointments if a.starts_at < e and s < a.ends_at]
        if booked and seats <= 0:
            state = "booked"
        elif any(ts < e and s < te for ts, te in time_off):
            state = "blocked"
        elif s <= now:
            state = "past"
        else:
            state = "free"
        variant, label = CELL[state]
        cells[(local.date(), local.strftime("%H:%M"))] = WeekCell(
            state=state,
            variant=variant,
            label=str(label),
            appointment=booked[0] if booked else None,
            seats_free=max(seats, 0),
        )
    times = sorted({t for _d, t in cells})
    rows = [(t, [cells.get((d, t)) for d in days]) for t in times]
    shown = [c.appointment for c in cells.values() if c.appointment is not None]
    audit_record(
        actor=user,
        action=AuditAction.VIEW,
        object_type=Appointment._meta.label_lower,
        detail={
            "what": "week",
            "list": True,
            "doctor": doctor.pk,
            "from": start.isoformat(),
            "ids": sorted({str(a.pk) for a in shown})[:200],
        },
    )
    return WeekGrid(
        doctor=doctor,
        start=start,
        days=days,
        rows=rows,
        zones=[zone_label(z, window_start) for z in sorted(zones or {tz_name})],
        time_zone=tz_name,
    )


# --- One appointment -----------------------------------------------------------------------


def _may_open_appointment(user: Any, appointment: Appointment, purpose: str) -> bool:
    """`view` and `status`: the appointment's doctor, reception, admins. `manage`
    (move, cancel): reception and admins — they act for the patient."""
    if not _active(user):
        return False
    if user.role in CLINIC_ROLES:
        return True
    if purpose == "manage":
        return False
    return user.role == Role.DOCTOR and appointment.doctor_id == user.pk


def appointment_get_for(user: Any, public_id: uuid.UUID, *, purpose: str = "view") -> Appointment:
    appointment = (
        Appointment.objects.select_related(
            "patient__user", "doctor__staff_profile", "location", "consultation_type"
        )
        .filter(public_id=public_id)
        .first()
    )
    if appointment is None:
        raise deny(user, "appointment", purpose=purpose, found=False)
    if not _may_open_appointment(user, appointment, purpose):
        raise deny(
            user,
            "appointment",
            obj=appointment,
            patient=appointment.patient.user,
            purpose=purpose,
        )
    audit_record(
        actor=user,
        action=AuditAction.VIEW,
        obj=appointment,
        patient=appointment.patient.user,
        detail={"what": "appointment", "purpose": purpose},
    )
    return appointment


def appointment_row(user: Any, appointment: Appointment) -> AppointmentRow:
    return _row(
        user,
        appointment,
        record_link=user.role == Role.DOCTOR and appointment.doctor_id == user.pk,
    )


def appointment_history(appointment: Appointment) -> list:
    """The appointment's events, each with `status_label` (the new status, in words)."""
    events = list(appointment.events.select_related("by__staff_profile"))
    for event in events:
        try:
            event.status_label = AppointmentStatus(event.to_status).label if event.to_status else ""
        except ValueError:
            event.status_label = event.to_status
    return events


def booking_patient_get_for(user: Any, profile_id: int) -> PatientProfile:
    """The patient reception is booking for: reception and admins only (recorded as a
    view of the patient's details); anyone else gets a recorded 404."""
    if not may_act_for_patients(user):
        profile = PatientProfile.objects.select_related("user").filter(pk=profile_id).first()
        raise deny(
            user,
            "booking_for_patient",
            obj=profile,
            patient=profile.user if profile else None,
        )
    return account_selectors.patient_profile_get_for(user, profile_id)


# --- Templates, exceptions, capacity, reviews -------------------------------------------


def consultation_types_for(doctor: User) -> QuerySet[ConsultationType]:
    return ConsultationType.objects.filter(doctors=doctor, active=True).select_related("specialty")


def working_hours_for(doctor: User) -> QuerySet[WorkingHours]:
    return (
        WorkingHours.objects.filter(doctor=doctor)
        .select_related("location")
        .prefetch_related("breaks")
        .order_by("weekday", "start")
    )


def working_hours_get_for(user: Any, doctor: User, hours_id: int) -> WorkingHours:
    hours = working_hours_for(doctor).filter(pk=hours_id).first()
    if hours is None:
        raise deny(user, "working_hours", doctor=doctor.pk, id=hours_id)
    return hours


def exceptions_for(doctor: User, *, now: datetime | None = None) -> QuerySet[ScheduleException]:
    """Exceptions not yet over, soonest first."""
    now = now or timezone.now()
    return (
        ScheduleException.objects.filter(doctor=doctor, during__endswith__gt=now)
        .select_related("location", "created_by__staff_profile")
        .order_by("during")
    )


def exception_get_for(user: Any, doctor: User, exception_id: int) -> ScheduleException:
    exception = ScheduleException.objects.filter(pk=exception_id, doctor=doctor).first()
    if exception is None:
        raise deny(user, "schedule_exception", doctor=doctor.pk, id=exception_id)
    return exception


def capacity_overrides_for(
    doctor: User, *, now: datetime | None = None
) -> QuerySet[CapacityOverride]:
    now = now or timezone.now()
    return (
        CapacityOverride.objects.filter(doctor=doctor, during__endswith__gt=now)
        .select_related("created_by__staff_profile")
        .order_by("during")
    )


def reviews_pending(user: Any) -> QuerySet[DoctorReview]:
    if not may_act_for_patients(user):
        return DoctorReview.objects.none()
    return (
        DoctorReview.objects.filter(status=DoctorReview.Status.PENDING)
        .select_related("doctor__staff_profile")
        .order_by("created_at", "pk")
    )


def review_get_for(user: Any, review_id: int) -> DoctorReview:
    review = reviews_pending(user).filter(pk=review_id).first()
    if review is None:
        raise deny(user, "review", id=review_id)
    return review


# --- Free times for booking and moving -----------------------------------------------------


@dataclass
class TimeChoice:
    slot: Slot
    label: str
    value: str = field(init=False)

    def __post_init__(self) -> None:
        self.value = slot_value(self.slot.start)


def slot_value(start: datetime) -> str:
    """The form value of a slot: its UTC start, e.g. 2026-03-14T06:00:00Z."""
    return start.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_slot_value(value: str) -> datetime | None:
    try:
        parsed = datetime.strptime(value.strip(), "%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, AttributeError):
        return None
    return parsed.replace(tzinfo=ZoneInfo("UTC"))


def time_choices(
    slots: Iterable[Slot], locations: dict[int, str] | None = None
) -> list[TimeChoice]:
    choices = []
    for slot in slots:
        local = slot.local_start()
        label = f"{local:%H:%M} — {zone_label(slot.time_zone, slot.start)}"
        if locations and slot.location_id in locations:
            label = f"{label}, {locations[slot.location_id]}"
        choices.append(TimeChoice(slot, label))
    return choices


def free_times(doctor: User, consultation_type: ConsultationType, day: date) -> list[TimeChoice]:
    slots = free_slots([doctor.pk], day, 1, consultation_type=consultation_type)[doctor.pk]
    return time_choices(slots, _location_names(slots))


def alternatives(slots: list[Slot]) -> list[TimeChoice]:
    """The nearest free times after a slot was taken, dated (they may be on other days)."""
    names = _location_names(slots)
    choices = []
    for slot in slots:
        local = slot.local_start()
        label = f"{local:%Y-%m-%d %H:%M} — {zone_label(slot.time_zone, slot.start)}"
        if slot.location_id in names:
            label = f"{label}, {names[slot.location_id]}"
        choices.append(TimeChoice(slot, label))
    return choices


def _location_names(slots: Iterable[Slot]) -> dict[int, str]:
    from accounts.models import Location

    ids = {s.location_id for s in slots}
    if len(ids) <= 1:
        return {}
    return dict(Location.objects.filter(pk__in=ids).values_list("pk", "name"))
