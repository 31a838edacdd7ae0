"""Every write to appointments: hold, book, cancel, reschedule, status changes, reviews.

No double booking is the database's job (the exclusion constraint); these services
pick a free seat, let the constraint decide under concurrency, and turn a lost race
into `SlotTaken` with the nearest alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import services as account_services
from accounts.models import PatientProfile, Role, User
from audit.models import AuditAction
from audit.services import audit_record
from scheduling import hooks
from scheduling.availability import Slot, nearest_free_slots, slot_for
from scheduling.models import (
    ACTIVE_STATUSES,
    HOLD_MINUTES,
    Appointment,
    AppointmentEvent,
    AppointmentEventKind,
    AppointmentSource,
    AppointmentStatus,
    CapacityOverride,
    ConsultationType,
    DoctorReview,
    LateCancellation,
)

CLINIC_ROLES = {Role.RECEPTION, Role.ADMIN}


class SlotTaken(Exception):
    """The slot is no longer free. `alternatives` are the nearest free slots."""

    def __init__(self, alternatives: list[Slot]) -> None:
        super().__init__("slot taken")
        self.alternatives = alternatives


class HoldExpired(Exception):
    pass


@dataclass(frozen=True)
class CancellationQuote:
    """What cancelling (or moving) now would mean, shown before the patient confirms."""

    allowed: bool
    free: bool
    fee: Decimal
    free_until: datetime
    message: str = ""
    currency: str = "RUB"


def _record(appointment: Appointment, *, by: User | None, kind: str, **fields: Any) -> None:
    AppointmentEvent.objects.create(appointment=appointment, by=by, kind=kind, **fields)


def _may_act_for(by: User | None, patient: PatientProfile) -> bool:
    if by is None:
        return True  # the system (waitlist, MIS sync)
    if by.role == Role.PATIENT:
        return patient.user_id == by.pk
    return by.role in CLINIC_ROLES


def _by_clinic(by: User | None, appointment: Appointment, *, previous: str = "") -> bool:
    """Reception, admins, and the clinic's own systems (the MIS sync: by=None) cancel
    for the clinic: free for the patient, refunded in full, and the patient is told.
    A hold the system lets go (an expired waitlist offer) is not a booking cancelled."""
    if by is None:
        return (previous or appointment.status) != AppointmentStatus.HELD
    return by.role in CLINIC_ROLES


def _lock_doctor_calendar(doctor_id: int) -> None:
    """Serialise bookings per doctor until the transaction ends.

    The exclusion constraint alone is correct but two transactions inserting conflicting
    rows at once each wait for the other's check and deadlock; taking this lock first
    makes them queue instead. The constraint stays the safety net for every other writer.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [BOOKING_LOCK_CLASS, doctor_id])


# Arbitrary class id for the two-key advisory lock (the audit chain uses a 64-bit key).
BOOKING_LOCK_CLASS = 4201


def _capacity_at(doctor_id: int, start: datetime) -> int:
    override = (
        CapacityOverride.objects.filter(doctor_id=doctor_id, during__contains=start)
        .order_by("-created_at")
        .first()
    )
    return override.capacity if override else 1


def release_expired_holds(
    *, now: datetime | None = None, doctor_id: int | None = None
) -> list[int]:
    """Expire held slots whose checkout time is over. Idempotent; run by a beat sweep and
    before every booking, so a lost task never keeps a slot blocked."""
    now = now or timezone.now()
    expired = Appointment.objects.filter(status=AppointmentStatus.HELD, hold_expires_at__lte=now)
    if doctor_id is not None:
        expired = expired.filter(doctor_id=doctor_id)
    released: list[int] = []
    with transaction.atomic():
        for appointment in expired.select_for_update(skip_locked=True):
            appointment.status = AppointmentStatus.EXPIRED
            appointment.save(update_fields=["status", "updated_at"])
            _record(
                appointment,
                by=None,
                kind=AppointmentEventKind.STATUS,
                from_status=AppointmentStatus.HELD,
                to_status=AppointmentStatus.EXPIRED,
                note="hold expired",
            )
            released.append(appointment.pk)
            hooks.appointment_hold_released.fire(appointment_id=appointment.pk)
    return released


def appointment_hold(
    *,
    by: User | None,
    patient: PatientProfile,
    doctor: User,
    consultation_type: ConsultationType,
    starts_at: datetime,
    source: str = AppointmentSource.PORTAL,
    hold_minutes: int = HOLD_MINUTES,
    patient_note: str = "",
) -> Appointment:
    """Hold a free slot for the patient while they complete checkout."""
    if not _may_act_for(by, patient):
        raise PermissionDenied
    if not consultation_type.active or not consultation_type.doctors.filter(pk=doctor.pk).exists():
        raise ValidationError(_("This doctor does not offer this kind of consultation."))
    if slot_for(doctor.pk, starts_at, consultation_type) is None:
        # Answer a slot that is already gone without queueing behind the doctor's lock;
        # the check under the lock (and the constraint) still decides the rest.
        raise SlotTaken(nearest_free_slots([doctor.pk], starts_at, consultation_type))
    with transaction.atomic():
        _lock_doctor_calendar(doctor.pk)
        return _hold_locked(
            by=by,
            patient=patient,
            doctor=doctor,
            consultation_type=consultation_type,
            starts_at=starts_at,
            source=source,
            hold_minutes=hold_minutes,
            patient_note=patient_note,
        )


def _hold_locked(
    *,
    by: User | None,
    patient: PatientProfile,
    doctor: User,
    consultation_type: ConsultationType,
    starts_at: datetime,
    source: str,
    hold_minutes: int,
    patient_note: str,
) -> Appointment:
    release_expired_holds(doctor_id=doctor.pk)
    slot = slot_for(doctor.pk, starts_at, consultation_type)
    if slot is None:
        raise SlotTaken(nearest_free_slots([doctor.pk], starts_at, consultation_type))
    during = DateTimeTZRange(slot.start, slot.end, "[)")
    now = timezone.now()
    for seat in range(1, _capacity_at(doctor.pk, slot.start) + 1):
        try:
            with transaction.atomic():
                appointment = Appointment.objects.create(
                    patient=patient,
                    doctor=doctor,
                    location_id=slot.location_id,
                    consultation_type=consultation_type,
                    during=during,
                    seat=seat,
                    status=AppointmentStatus.HELD,
                    hold_expires_at=now + timedelta(minutes=hold_minutes),
                    source=source,
                    price=consultation_type.price,
                    currency=consultation_type.currency,
                    patient_note=patient_note,
                )
                _record(
                    appointment,
                    by=by,
                    kind=AppointmentEventKind.CREATED,
                    to_status=AppointmentStatus.HELD,
                    to_during=during,
                )
                audit_record(
                    actor=by,
                    action=AuditAction.CREATE,
                    obj=appointment,
                    patient=patient.user,
                    detail={"status": "held"},
                )
                hooks.appointment_held.fire(appointment_id=appointment.pk)
                return appointment
        except IntegrityError as exc:
            if "appointment_no_overlap" not in str(exc):
                raise
            continue  # that seat went to someone else a moment ago: try the next one
    raise SlotTaken(nearest_free_slots([doctor.pk], starts_at, consultation_type))


def appointment_hold_release(
    *, by: User | None, appointment: Appointment, reason: str = ""
) -> Appointment:
    """End a hold before its time (the payment failed or was abandoned): the slot is free
    again at once. A hold that is already over is left as it is."""
    with transaction.atomic():
        appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if not _may_act_for(by, appointment.patient):
            raise PermissionDenied
        if appointment.status != AppointmentStatus.HELD:
            return appointment
        appointment.status = AppointmentStatus.EXPIRED
        appointment.save(update_fields=["status", "updated_at"])
        _record(
            appointment,
            by=by,
            kind=AppointmentEventKind.STATUS,
            from_status=AppointmentStatus.HELD,
            to_status=AppointmentStatus.EXPIRED,
            note=reason[:200] or "hold released",
        )
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=appointment,
            patient=appointment.patient.user,
            detail={"status": "expired", "reason": reason[:200]},
        )
        hooks.appointment_hold_released.fire(appointment_id=appointment.pk)
    return appointment


def appointment_book(*, by: User | None, appointment: Appointment) -> Appointment:
    """Turn a hold into a booking (directly, or when the prepayment succeeded)."""
    with transaction.atomic():
        appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if not _may_act_for(by, appointment.patient):
            raise PermissionDenied
        if appointment.status in (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED):
            return appointment  # idempotent: a retried request or webhook
        if appointment.status != AppointmentStatus.HELD:
            raise HoldExpired
        if appointment.hold_expires_at <= timezone.now():
            raise HoldExpired
        appointment.status = AppointmentStatus.BOOKED
        appointment.hold_expires_at = None
        appointment.save(update_fields=["status", "hold_expires_at", "updated_at"])
        _record(
            appointment,
            by=by,
            kind=AppointmentEventKind.STATUS,
            from_status=AppointmentStatus.HELD,
            to_status=AppointmentStatus.BOOKED,
        )
        account_services.care_access_grant(
            by=None,
            doctor=appointment.doctor,
            patient=appointment.patient,
            reason=f"appointment {appointment.pk}",
        )
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=appointment,
            patient=appointment.patient.user,
            detail={"status": "booked"},
        )
        hooks.appointment_booked.fire(appointment_id=appointment.pk)
    return appointment


def appointment_book_slot(
    *,
    by: User | None,
    patient: PatientProfile,
    doctor: User,
    consultation_type: ConsultationType,
    starts_at: datetime,
    source: str = AppointmentSource.PORTAL,
    patient_note: str = "",
) -> Appointment:
    """Hold and book in one transaction (no prepayment needed)."""
    with transaction.atomic():
        held = appointment_hold(
            by=by,
            patient=patient,
            doctor=doctor,
            consultation_type=consultation_type,
            starts_at=starts_at,
            source=source,
            patient_note=patient_note,
        )
        return appointment_book(by=by, appointment=held)


# --- Cancelling and moving -----------------------------------------------------------------


def cancellation_quote(
    appointment: Appointment, *, by: User | None, now: datetime | None = None
) -> CancellationQuote:
    now = now or timezone.now()
    ctype = appointment.consultation_type
    free_until = appointment.starts_at - timedelta(hours=ctype.free_cancellation_hours)
    by_clinic = _by_clinic(by, appointment)
    if appointment.status not in ACTIVE_STATUSES or appointment.status in (
        AppointmentStatus.ARRIVED,
        AppointmentStatus.IN_PROGRESS,
    ):
        return CancellationQuote(
            False,
            False,
            Decimal("0"),
            free_until,
            _("This appointment can no longer be changed."),
            ctype.currency,
        )
    if appointment.status == AppointmentStatus.HELD or now <= free_until or by_clinic:
        return CancellationQuote(True, True, Decimal("0"), free_until, "", ctype.currency)
    if appointment.starts_at <= now:
        return CancellationQuote(
            False,
            False,
            Decimal("0"),
            free_until,
            _("The appointment has already started."),
            ctype.currency,
        )
    if ctype.late_cancellation == LateCancellation.NOT_ONLINE:
        return CancellationQuote(
            False,
            False,
            Decimal("0"),
            free_until,
            _("It is too late to change this appointment online. Please call the clinic."),
            ctype.currency,
        )
    return CancellationQuote(
        True, False, ctype.late_cancellation_fee, free_until, "", ctype.currency
    )


def appointment_cancel(
    *, by: User | None, appointment: Appointment, reason: str = "", now: datetime | None = None
) -> Appointment:
    with transaction.atomic():
        appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if not _may_act_for(by, appointment.patient):
            raise PermissionDenied
        if appointment.status == AppointmentStatus.CANCELLED:
            return appointment
        quote = cancellation_quote(appointment, by=by, now=now)
        if not quote.allowed:
            raise ValidationError(quote.message)
        previous = appointment.status
        appointment.status = AppointmentStatus.CANCELLED
        appointment.cancellation_fee = quote.fee
        appointment.cancellation_reason = reason[:200]
        appointment.hold_expires_at = None
        appointment.save(
            update_fields=[
                "status",
                "cancellation_fee",
                "cancellation_reason",
                "hold_expires_at",
                "updated_at",
            ]
        )
        _record(
            appointment,
            by=by,
            kind=AppointmentEventKind.STATUS,
            from_status=previous,
            to_status=AppointmentStatus.CANCELLED,
            note=reason[:200],
        )
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=appointment,
            patient=appointment.patient.user,
            detail={"status": "cancelled", "fee": str(quote.fee)},
        )
        hooks.appointment_cancelled.fire(
            appointment_id=appointment.pk,
            cancellation_fee=quote.fee,
            free=quote.free,
            by_clinic=_by_clinic(by, appointment, previous=previous),
        )
    return appointment


def appointment_reschedule(
    *, by: User | None, appointment: Appointment, new_start: datetime
) -> Appointment:
    """Move to another free slot of the same doctor; the row, its payment and its history
    stay (one MOVED event records both times)."""
    with transaction.atomic():
        appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if not _may_act_for(by, appointment.patient):
            raise PermissionDenied
        quote = cancellation_quote(appointment, by=by)
        if not quote.allowed or not quote.free:
            raise ValidationError(
                quote.message
                or _("It is too late to move this appointment online. Please call the clinic.")
            )
        ctype = appointment.consultation_type
        _lock_doctor_calendar(appointment.doctor_id)
        release_expired_holds(doctor_id=appointment.doctor_id)
        slot = slot_for(appointment.doctor_id, new_start, ctype)
        if slot is None:
            raise SlotTaken(nearest_free_slots([appointment.doctor_id], new_start, ctype))
        previous = appointment.during
        appointment.during = DateTimeTZRange(slot.start, slot.end, "[)")
        appointment.location_id = slot.location_id
        try:
            with transaction.atomic():
                appointment.save(update_fields=["during", "location", "updated_at"])
        except IntegrityError as exc:
            if "appointment_no_overlap" not in str(exc):
                raise
            raise SlotTaken(nearest_free_slots([appointment.doctor_id], new_start, ctype)) from exc
        _record(
            appointment,
            by=by,
            kind=AppointmentEventKind.MOVED,
            from_during=previous,
            to_during=appointment.during,
        )
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=appointment,
            patient=appointment.patient.user,
            detail={"moved_from": previous.lower.isoformat()},
        )
        hooks.appointment_rescheduled.fire(
            appointment_id=appointment.pk, previous_start=previous.lower
        )
    return appointment


# --- Status changes by staff -------------------------------------------------------------

TRANSITIONS: dict[str, dict[str, set[str]]] = {
    AppointmentStatus.BOOKED: {
        AppointmentStatus.CONFIRMED: {Role.PATIENT, Role.RECEPTION, Role.ADMIN},
        AppointmentStatus.ARRIVED: {Role.RECEPTION, Role.ADMIN, Role.NURSE},
        AppointmentStatus.NO_SHOW: {Role.RECEPTION, Role.ADMIN, Role.DOCTOR},
    },
    AppointmentStatus.CONFIRMED: {
        AppointmentStatus.ARRIVED: {Role.RECEPTION, Role.ADMIN, Role.NURSE},
        AppointmentStatus.NO_SHOW: {Role.RECEPTION, Role.ADMIN, Role.DOCTOR},
    },
    AppointmentStatus.ARRIVED: {
        AppointmentStatus.IN_PROGRESS: {Role.DOCTOR, Role.RECEPTION, Role.ADMIN},
        AppointmentStatus.COMPLETED: {Role.DOCTOR},
    },
    AppointmentStatus.IN_PROGRESS: {AppointmentStatus.COMPLETED: {Role.DOCTOR}},
}


def appointment_set_status(
    *, by: User | None, appointment: Appointment, status: str
) -> Appointment:
    with transaction.atomic():
        appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
        allowed_roles = TRANSITIONS.get(appointment.status, {}).get(status)
        if allowed_roles is None:
            raise ValidationError(
                _("An appointment that is “%(from)s” cannot become “%(to)s”.")
                % {"from": appointment.get_status_display(), "to": AppointmentStatus(status).label}
            )
        if by is not None:
            if by.role not in allowed_roles:
                raise PermissionDenied
            if by.role == Role.PATIENT and appointment.patient.user_id != by.pk:
                raise PermissionDenied
            if by.role == Role.DOCTOR and appointment.doctor_id != by.pk:
                raise PermissionDenied
        previous = appointment.status
        appointment.status = status
        appointment.save(update_fields=["status", "updated_at"])
        _record(
            appointment,
            by=by,
            kind=AppointmentEventKind.STATUS,
            from_status=previous,
            to_status=status,
        )
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=appointment,
            patient=appointment.patient.user,
            detail={"status": status},
        )
        hooks.appointment_status_changed.fire(
            appointment_id=appointment.pk, previous_status=previous, status=status
        )
    return appointment


# --- Capacity --------------------------------------------------------------------------------


def capacity_override_set(
    *, by: User, doctor: User, starts_at: datetime, ends_at: datetime, capacity: int, reason: str
) -> CapacityOverride:
    if by.role not in CLINIC_ROLES:
        raise PermissionDenied
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason for more than one patient per slot.")})
    with transaction.atomic():
        override = CapacityOverride.objects.create(
            doctor=doctor,
            during=DateTimeTZRange(starts_at, ends_at, "[)"),
            capacity=capacity,
            reason=reason.strip(),
            created_by=by,
        )
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=override,
            detail={"capacity": capacity},
            reason=reason.strip(),
        )
    return override


# --- Reviews -----------------------------------------------------------------------------------


def review_submit(
    *, by: User, appointment: Appointment, rating: int, text: str = ""
) -> DoctorReview:
    appointment = Appointment.objects.select_related("patient").get(pk=appointment.pk)
    if by.role != Role.PATIENT or appointment.patient.user_id != by.pk:
        raise PermissionDenied
    if appointment.status != AppointmentStatus.COMPLETED:
        raise ValidationError(_("You can review a visit once it has taken place."))
    if not 1 <= int(rating) <= 5:
        raise ValidationError({"rating": _("Choose from 1 to 5 stars.")})
    with transaction.atomic():
        if DoctorReview.objects.filter(appointment=appointment).exists():
            raise ValidationError(_("You have already reviewed this visit."))
        review = DoctorReview.objects.create(
            appointment=appointment,
            doctor=appointment.doctor,
            rating=int(rating),
            text=text.strip(),
        )
        audit_record(actor=by, action=AuditAction.CREATE, obj=review, patient=by)
    return review


def review_moderate(*, by: User, review: DoctorReview, approve: bool) -> DoctorReview:
    if by.role not in CLINIC_ROLES:
        raise PermissionDenied
    with transaction.atomic():
        review.status = DoctorReview.Status.APPROVED if approve else DoctorReview.Status.REJECTED
        review.moderated_by = by
        review.moderated_at = timezone.now()
        review.save(update_fields=["status", "moderated_by", "moderated_at"])
        audit_record(
            actor=by, action=AuditAction.CHANGE, obj=review, detail={"status": review.status}
        )
    return review
