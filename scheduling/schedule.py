"""Services that manage doctors' calendars: weekly working-hour templates with their
breaks, and exceptions (vacation, sick day, blocked time, extra hours).

Keyword-only, the acting user first, each in one transaction with its audit event. A
doctor manages their own calendar; reception and administrators manage anyone's.
Time off that overlaps booked appointments is refused with the list of those
appointments, unless reception or an administrator asks to cancel them too
(`cancel_affected=True`), which goes through `scheduling.services.appointment_cancel`.

Template changes never touch existing bookings: an appointment already made stays where
it is; only the free slots offered from now on change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import Location, Role, User
from audit.models import AuditAction
from audit.services import audit_record
from scheduling import services as booking
from scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    ExceptionKind,
    ScheduleException,
    WorkingHours,
    WorkingHoursBreak,
)
from scheduling.selectors.staff import may_manage_calendar

CLINIC_ROLES = {Role.RECEPTION, Role.ADMIN}
TIME_OFF_KINDS = (ExceptionKind.VACATION, ExceptionKind.SICK, ExceptionKind.BLOCKED)
MIN_SLOT, MAX_SLOT = 5, 240


class AppointmentsAffected(ValidationError):
    """Time off would overlap these appointments. `appointments` lists them (with
    patient, location and consultation type loaded) so a page can show them."""

    def __init__(self, appointments: Sequence[Appointment], *, may_cancel: bool) -> None:
        self.appointments = list(appointments)
        self.may_cancel = may_cancel
        when = ", ".join(_describe(a) for a in self.appointments)
        count = len(self.appointments)
        if may_cancel:
            message = ngettext(
                "This time off overlaps %(count)d booked appointment (%(when)s). Move it "
                "first, or choose to cancel it for the patient.",
                "This time off overlaps %(count)d booked appointments (%(when)s). Move them "
                "first, or choose to cancel them for the patients.",
                count,
            )
        else:
            message = ngettext(
                "This time off overlaps %(count)d booked appointment (%(when)s). Ask "
                "reception to move or cancel it first.",
                "This time off overlaps %(count)d booked appointments (%(when)s). Ask "
                "reception to move or cancel them first.",
                count,
            )
        super().__init__(message % {"count": count, "when": when}, code="appointments_affected")


def _describe(appointment: Appointment) -> str:
    local = timezone.localtime(appointment.starts_at, appointment.location.tzinfo)
    return f"{local:%Y-%m-%d %H:%M} {appointment.location.time_zone}"


def _require_manager(by: User | None, doctor: User) -> None:
    if by is None:  # the system: the MIS sync, when the MIS is the master of schedules
        return
    if not may_manage_calendar(by, doctor):
        raise PermissionDenied


def _lock_calendar(doctor_id: int) -> None:
    # The same lock bookings take (scheduling.services): no booking can slip in between
    # the overlap check and the insert of time off.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", [booking.BOOKING_LOCK_CLASS, doctor_id]
        )


# --- Weekly templates --------------------------------------------------------------------


def _fmt(value: time) -> str:
    return value.strftime("%H:%M")


def working_hours_validate(
    *,
    doctor: User,
    location: Location | None,
    weekday: int,
    start: time | None,
    end: time | None,
    slot_minutes: int | None,
    breaks: Iterable[tuple[time, time]] = (),
    valid_from: date | None = None,
    valid_until: date | None = None,
    exclude_pk: int | None = None,
) -> None:
    """Raise ValidationError (by field) if the template is not workable. Reads only."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if location is None:
        add("location", _("Choose the location."))
    if weekday not in range(7):
        add("weekday", _("Choose a day of the week."))
    if start is None or end is None or end <= start:
        add("end", _("The end must be later than the start."))
    if slot_minutes is None or not MIN_SLOT <= slot_minutes <= MAX_SLOT:
        add(
            "slot_minutes",
            _("A slot is from %(min)d to %(max)d minutes long.")
            % {"min": MIN_SLOT, "max": MAX_SLOT},
        )
    elif start is not None and end is not None and end > start:
        length = (datetime.combine(date.min, end) - datetime.combine(date.min, start)).seconds
        if length < slot_minutes * 60:
            add("slot_minutes", _("The working hours are shorter than one slot."))
    if valid_from and valid_until and valid_until < valid_from:
        add("valid_until", _("“Valid until” cannot be before “valid from”."))
    previous: tuple[time, time] | None = None
    for b_start, b_end in sorted(breaks):
        if b_end <= b_start:
            add("breaks", _("A break must end after it starts."))
        elif start is not None and end is not None and (b_start < start or b_end > end):
            add(
                "breaks",
                _("The break %(break)s is outside the working hours.")
                % {"break": f"{_fmt(b_start)}–{_fmt(b_end)}"},
            )
        if previous is not None and b_start < previous[1]:
            add("breaks", _("Breaks must not overlap."))
        previous = (b_start, b_end)
    if errors:
        raise ValidationError(errors)
    # A doctor is in one place at a time: no two templates overlap on the same weekday
    # while both are valid, at any location.
    others = WorkingHours.objects.filter(
        doctor=doctor, weekday=weekday, start__lt=end, end__gt=start
    ).select_related("location")
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    if valid_until is not None:
        others = others.filter(Q(valid_from__isnull=True) | Q(valid_from__lte=valid_until))
    if valid_from is not None:
        others = others.filter(Q(valid_until__isnull=True) | Q(valid_until__gte=valid_from))
    clash = others.first()
    if clash is not None:
        raise ValidationError(
            {
                "start": _(
                    "These hours overlap the working hours %(day)s %(from)s–%(until)s at "
                    "%(location)s."
                )
                % {
                    "day": clash.get_weekday_display(),
                    "from": _fmt(clash.start),
                    "until": _fmt(clash.end),
                    "location": clash.location,
                }
            }
        )


def working_hours_set(
    *,
    by: User,
    doctor: User,
    location: Location,
    weekday: int,
    start: time,
    end: time,
    slot_minutes: int = 30,
    breaks: Iterable[tuple[time, time]] = (),
    valid_from: date | None = None,
    valid_until: date | None = None,
    working_hours: WorkingHours | None = None,
) -> WorkingHours:
    """Create a weekly template, or replace one (`working_hours`) with its breaks."""
    _require_manager(by, doctor)
    breaks = sorted(breaks)
    if working_hours is not None and working_hours.doctor_id != doctor.pk:
        raise PermissionDenied
    with transaction.atomic():
        _lock_calendar(doctor.pk)
        working_hours_validate(
            doctor=doctor,
            location=location,
            weekday=weekday,
            start=start,
            end=end,
            slot_minutes=slot_minutes,
            breaks=breaks,
            valid_from=valid_from,
            valid_until=valid_until,
            exclude_pk=working_hours.pk if working_hours is not None else None,
        )
        created = working_hours is None
        if created:
            hours = WorkingHours(doctor=doctor)
            before: dict[str, Any] = {}
        else:
            hours = WorkingHours.objects.select_for_update().get(pk=working_hours.pk)
            before = _hours_summary(hours, list(hours.breaks.all()))
        hours.location = location
        hours.weekday = weekday
        hours.start = start
        hours.end = end
        hours.slot_minutes = slot_minutes
        hours.valid_from = valid_from
        hours.valid_until = valid_until
        hours.save()
        hours.breaks.all().delete()
        WorkingHoursBreak.objects.bulk_create(
            [WorkingHoursBreak(working_hours=hours, start=s, end=e) for s, e in breaks]
        )
        detail: dict[str, Any] = {"doctor": doctor.pk, **_hours_summary(hours, breaks)}
        if before:
            detail["before"] = before
        audit_record(
            actor=by,
            action=AuditAction.CREATE if created else AuditAction.CHANGE,
            obj=hours,
            detail=detail,
        )
    return hours


def _hours_summary(hours: WorkingHours, breaks: Iterable[Any]) -> dict[str, Any]:
    def pair(item: Any) -> str:
        s, e = (item.start, item.end) if hasattr(item, "start") else item
        return f"{_fmt(s)}-{_fmt(e)}"

    return {
        "location": hours.location_id,
        "weekday": hours.weekday,
        "hours": f"{_fmt(hours.start)}-{_fmt(hours.end)}",
        "slot_minutes": hours.slot_minutes,
        "breaks": [pair(b) for b in breaks],
        "valid_from": hours.valid_from.isoformat() if hours.valid_from else None,
        "valid_until": hours.valid_until.isoformat() if hours.valid_until else None,
    }


def working_hours_delete(*, by: User, working_hours: WorkingHours) -> None:
    """Remove a weekly template (its breaks go with it). Booked appointments stay."""
    doctor = User.objects.get(pk=working_hours.doctor_id)
    _require_manager(by, doctor)
    with transaction.atomic():
        _lock_calendar(doctor.pk)
        hours = WorkingHours.objects.select_for_update().filter(pk=working_hours.pk).first()
        if hours is None:
            return  # already gone: deleting twice is not an error
        summary = _hours_summary(hours, list(hours.breaks.all()))
        pk = hours.pk
        hours.delete()
        audit_record(
            actor=by,
            action=AuditAction.DELETE,
            object_type=WorkingHours._meta.label_lower,
            object_id=pk,
            detail={"doctor": doctor.pk, **summary},
        )


# --- Exceptions ------------------------------------------------------------------------------


def appointments_overlapping(
    doctor: User, starts_at: datetime, ends_at: datetime, *, now: datetime | None = None
) -> list[Appointment]:
    """Appointments that occupy the doctor's time in the period (expired holds do not)."""
    now = now or timezone.now()
    return list(
        Appointment.objects.filter(
            doctor=doctor,
            status__in=ACTIVE_STATUSES,
            during__overlap=DateTimeTZRange(starts_at, ends_at, "[)"),
        )
        .exclude(status=AppointmentStatus.HELD, hold_expires_at__lte=now)
        .select_related("patient__user", "location", "consultation_type")
        .order_by("during", "pk")
    )


def schedule_exception_validate(
    *,
    kind: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    location: Location | None,
    slot_minutes: int | None,
) -> None:
    errors: dict[str, list[str]] = {}
    if kind not in ExceptionKind.values:
        errors["kind"] = [_("Choose the kind of change.")]
    if starts_at is None or ends_at is None or ends_at <= starts_at:
        errors["ends_at"] = [_("The end must be later than the start.")]
    if kind == ExceptionKind.EXTRA:
        if location is None:
            errors["location"] = [_("Extra hours need a location.")]
        if slot_minutes is None or not MIN_SLOT <= slot_minutes <= MAX_SLOT:
            errors["slot_minutes"] = [
                _("A slot is from %(min)d to %(max)d minutes long.")
                % {"min": MIN_SLOT, "max": MAX_SLOT}
            ]
    if errors:
        raise ValidationError(errors)


def schedule_exception_add(
    *,
    by: User | None,
    doctor: User,
    kind: str,
    starts_at: datetime,
    ends_at: datetime,
    location: Location | None = None,
    slot_minutes: int = 30,
    reason: str = "",
    cancel_affected: bool = False,
) -> ScheduleException:
    """Add time off (vacation, sick day, blocked time) or extra hours.

    Time off over booked appointments raises `AppointmentsAffected` listing them; with
    `cancel_affected=True` (reception and administrators only) they are cancelled for
    the patients, free of charge, in the same transaction.
    """
    _require_manager(by, doctor)
    if cancel_affected and (by is None or by.role not in CLINIC_ROLES):
        raise PermissionDenied
    schedule_exception_validate(
        kind=kind,
        starts_at=starts_at,
        ends_at=ends_at,
        location=location,
        slot_minutes=slot_minutes,
    )
    reason = (reason or "").strip()[:200]
    with transaction.atomic():
        _lock_calendar(doctor.pk)
        cancelled: list[int] = []
        if kind in TIME_OFF_KINDS:
            affected = appointments_overlapping(doctor, starts_at, ends_at)
            if affected and not cancel_affected:
                raise AppointmentsAffected(
                    affected, may_cancel=by is not None and by.role in CLINIC_ROLES
                )
            if affected:
                # Row locks first, in a fixed order, before the audit chain lock that each
                # cancellation takes.
                list(
                    Appointment.objects.select_for_update()
                    .filter(pk__in=[a.pk for a in affected])
                    .order_by("pk")
                    .values_list("pk", flat=True)
                )
                note = reason or str(ExceptionKind(kind).label)
                for appointment in affected:
                    booking.appointment_cancel(
                        by=by,
                        appointment=appointment,
                        reason=_("The doctor is not available: %(why)s") % {"why": note},
                    )
                    cancelled.append(appointment.pk)
        exception = ScheduleException(
            doctor=doctor,
            kind=kind,
            during=DateTimeTZRange(starts_at, ends_at, "[)"),
            location=location,
            slot_minutes=slot_minutes if kind == ExceptionKind.EXTRA else 30,
            reason=reason,
            created_by=by,
        )
        exception.full_clean()
        exception.save()
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=exception,
            reason=reason,
            detail={
                "doctor": doctor.pk,
                "kind": kind,
                "from": starts_at.isoformat(),
                "until": ends_at.isoformat(),
                "location": location.pk if location else None,
                "cancelled_appointments": cancelled,
            },
        )
    return exception


def schedule_exception_remove(*, by: User | None, exception: ScheduleException) -> None:
    """Remove an exception: time off ends (its slots are offered again), extra hours go
    (appointments already booked in them stay)."""
    doctor = User.objects.get(pk=exception.doctor_id)
    _require_manager(by, doctor)
    with transaction.atomic():
        _lock_calendar(doctor.pk)
        row = ScheduleException.objects.select_for_update().filter(pk=exception.pk).first()
        if row is None:
            return
        detail = {
            "doctor": doctor.pk,
            "kind": row.kind,
            "from": row.during.lower.isoformat(),
            "until": row.during.upper.isoformat(),
        }
        pk = row.pk
        row.delete()
        audit_record(
            actor=by,
            action=AuditAction.DELETE,
            object_type=ScheduleException._meta.label_lower,
            object_id=pk,
            detail=detail,
        )


def whole_days(first: date, last: date, tz: Any) -> tuple[datetime, datetime]:
    """The instants from the start of `first` to the end of `last`, local to `tz`."""
    start = datetime.combine(first, time.min, tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)
    return start, end
