"""The waitlist: a patient asks for an earlier slot with a doctor or a specialty; when one
frees up, the first in line gets an offer that holds the slot for WAITLIST_OFFER_MINUTES.

How a freed slot travels:

1. `appointment_cancel`, an expiring hold (`release_expired_holds`) or a reschedule fire
   their hooks inside the service's transaction. `connect()` registers handlers that, on
   commit, enqueue the Celery task `scheduling.offer_freed_slot` (ids only).
2. The task calls `waitlist_offer_next`: the first WAITING entry (created_at order) for
   that doctor, or for that doctor's specialty, whose `wanted_before` is after the slot,
   whose patient has nothing else booked at that time and that was never offered this
   slot, gets the slot held for them (`appointment_hold`, source "waitlist", 15 minutes)
   and an OPEN offer; the entry becomes OFFERED; `hooks.waitlist_offer_made` fires in
   the same transaction (notifications write the message row with the offer; it also
   shows on the patient's waitlist page).
3. Accepting books the held appointment. Declining cancels it, which frees the slot
   again, so the next in line gets it. An offer nobody answers expires with its hold
   (`expire_waitlist_offers`, every minute); the released hold frees the slot, so the
   next in line gets it.

The rule for a declined or expired offer: the entry goes back to WAITING and keeps its
place for *later* slots (the patient still wants an earlier visit; they may have missed
the message), but an entry is never offered the same slot (doctor and start) twice, so
the slot always moves on to the next entry. To leave the waitlist the patient cancels
the entry.

A Celery message is only a nudge (DESIGN.md rule 1): the same beat sweep also looks at
slots freed in the last hour (from the appointments' history) and offers any that are
still free and wanted, so a lost message delays an offer by a minute at most. Every step
is idempotent: running the sweep twice changes nothing more.

Lock order, the same on every path (so none deadlock): entry row, offer row, then the
doctor's calendar lock and appointment rows (booking), then the audit chain (last).
Offering the next entry always happens in its own transaction, after the commit that
freed the slot.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import PatientProfile, Role, Specialty, User
from audit.models import AuditAction
from audit.services import audit_record
from scheduling import hooks
from scheduling import services as booking
from scheduling.availability import slot_for
from scheduling.models import (
    ACTIVE_STATUSES,
    WAITLIST_OFFER_MINUTES,
    Appointment,
    AppointmentEvent,
    AppointmentEventKind,
    AppointmentSource,
    AppointmentStatus,
    ConsultationType,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistOfferStatus,
    WaitlistStatus,
)

logger = logging.getLogger(__name__)

ACTIVE_ENTRY_STATUSES = (WaitlistStatus.WAITING, WaitlistStatus.OFFERED)
MAX_ACTIVE_ENTRIES = 5
# How far back the sweep looks for freed slots a lost message may have missed.
FREED_SLOT_WINDOW = timedelta(hours=1)
# ...within the newest this many appointment events (about weeks of activity at the data
# scale of DESIGN.md; far more than an hour's).
RECENT_EVENTS = 20_000
# A slot is offered only if the patient has time to answer and to get there.
MIN_LEAD = timedelta(minutes=WAITLIST_OFFER_MINUTES)
# Candidates tried for one slot (an entry's own consultation may not fit the slot).
MAX_CANDIDATES = 25


class OfferClosed(ValidationError):
    """The offer was already answered or has expired."""


def _may_act_for(by: User | None, patient: PatientProfile) -> bool:
    if by is None:
        return True  # the system
    if by.role == Role.PATIENT:
        return patient.user_id == by.pk
    return by.role in booking.CLINIC_ROLES


# --- Joining and leaving -----------------------------------------------------------------


def waitlist_join(
    *,
    by: User,
    patient: PatientProfile,
    consultation_type: ConsultationType,
    wanted_before: datetime,
    doctor: User | None = None,
    specialty: Specialty | None = None,
) -> WaitlistEntry:
    """Ask for a slot before `wanted_before` with `doctor`, or with any doctor of
    `specialty` (the consultation's specialty when neither is given)."""
    if not _may_act_for(by, patient) or by is None:
        raise PermissionDenied
    if not consultation_type.active:
        raise ValidationError({"consultation_type": _("This consultation is not offered.")})
    if doctor is not None:
        if (
            doctor.role != Role.DOCTOR
            or not consultation_type.doctors.filter(pk=doctor.pk).exists()
        ):
            raise ValidationError(
                {"doctor": _("This doctor does not offer this kind of consultation.")}
            )
        specialty = None
    elif specialty is None:
        specialty = consultation_type.specialty
    if wanted_before <= timezone.now() + MIN_LEAD:
        raise ValidationError({"wanted_before": _("Choose a date in the future.")})
    with transaction.atomic():
        # One patient's joins in a row: lock the profile so the checks below hold.
        PatientProfile.objects.select_for_update().filter(pk=patient.pk).first()
        active = WaitlistEntry.objects.filter(patient=patient, status__in=ACTIVE_ENTRY_STATUSES)
        if active.filter(
            consultation_type=consultation_type, doctor=doctor, specialty=specialty
        ).exists():
            raise ValidationError(_("You are already on this waitlist."))
        if active.count() >= MAX_ACTIVE_ENTRIES:
            raise ValidationError(
                _("You can be on at most %(count)s waitlists at a time.")
                % {"count": MAX_ACTIVE_ENTRIES}
            )
        entry = WaitlistEntry.objects.create(
            patient=patient,
            doctor=doctor,
            specialty=specialty,
            consultation_type=consultation_type,
            wanted_before=wanted_before,
        )
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=entry,
            patient=patient.user,
            detail={"doctor": doctor.pk if doctor else None, "specialty": entry.specialty_id},
        )
    return entry


def waitlist_cancel(*, by: User, entry: WaitlistEntry) -> WaitlistEntry:
    """Leave the waitlist. An open offer is declined with it (its slot goes to the next)."""
    with transaction.atomic():
        entry = (
            WaitlistEntry.objects.select_for_update(of=("self",))
            .select_related("patient__user")
            .get(pk=entry.pk)
        )
        if not _may_act_for(by, entry.patient) or by is None:
            raise PermissionDenied
        if entry.status in (WaitlistStatus.CANCELLED, WaitlistStatus.ACCEPTED):
            return entry
        for offer in WaitlistOffer.objects.select_for_update().filter(
            entry=entry, status=WaitlistOfferStatus.OPEN
        ):
            _release_offer(by=by, offer=offer, status=WaitlistOfferStatus.DECLINED)
        entry.status = WaitlistStatus.CANCELLED
        entry.save(update_fields=["status"])
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=entry,
            patient=entry.patient.user,
            detail={"status": WaitlistStatus.CANCELLED},
        )
    return entry


# --- Offering a freed slot ---------------------------------------------------------------


def _already_offered(entry_id: int, doctor_id: int, starts_at: datetime) -> bool:
    return WaitlistOffer.objects.filter(
        entry_id=entry_id,
        appointment__doctor_id=doctor_id,
        appointment__during__startswith=starts_at,
    ).exists()


def _busy_then(patient_id: int, starts_at: datetime, ends_at: datetime) -> bool:
    return Appointment.objects.filter(
        patient_id=patient_id,
        status__in=ACTIVE_STATUSES,
        during__overlap=(starts_at, ends_at),
    ).exists()


def _candidates(doctor: User, starts_at: datetime, consultation_type: ConsultationType):  # noqa: ANN202
    from django.db.models import Q

    specialties = {consultation_type.specialty_id}
    profile = getattr(doctor, "staff_profile", None)
    if profile is not None and profile.specialty_id:
        specialties.add(profile.specialty_id)
    return (
        WaitlistEntry.objects.filter(
            status=WaitlistStatus.WAITING,
            wanted_before__gt=starts_at,
            consultation_type__active=True,
            consultation_type__doctors=doctor,
        )
        .filter(Q(doctor=doctor) | Q(doctor__isnull=True, specialty_id__in=specialties))
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:MAX_CANDIDATES]
    )


def waitlist_offer_next(
    *,
    doctor_id: int,
    starts_at: datetime,
    consultation_type: ConsultationType,
    now: datetime | None = None,
) -> WaitlistOffer | None:
    """Offer the freed slot (doctor, start) to the first entry in line. None when the slot
    is no longer free, too close, or nobody in line can take it."""
    now = now or timezone.now()
    if starts_at <= now + MIN_LEAD:
        return None
    doctor = User.objects.select_related("staff_profile").filter(pk=doctor_id).first()
    if doctor is None:
        return None
    candidates = list(_candidates(doctor, starts_at, consultation_type))
    if not candidates or slot_for(doctor_id, starts_at, consultation_type, now=now) is None:
        return None  # nobody waiting, or taken again meanwhile / no longer in the hours
    for entry_id in candidates:
        with transaction.atomic():
            entry = (
                WaitlistEntry.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("patient__user", "consultation_type")
                .filter(pk=entry_id, status=WaitlistStatus.WAITING)
                .first()
            )
            if entry is None or _already_offered(entry.pk, doctor_id, starts_at):
                continue
            ends_at = starts_at + entry.consultation_type.duration
            if _busy_then(entry.patient_id, starts_at, ends_at):
                continue
            try:
                appointment = booking.appointment_hold(
                    by=None,
                    patient=entry.patient,
                    doctor=doctor,
                    consultation_type=entry.consultation_type,
                    starts_at=starts_at,
                    source=AppointmentSource.WAITLIST,
                    hold_minutes=WAITLIST_OFFER_MINUTES,
                )
            except booking.SlotTaken:
                if entry.consultation_type_id == consultation_type.pk:
                    return None  # the slot itself is gone
                continue  # this entry's consultation does not fit; the next may
            except ValidationError:
                continue
            offer = WaitlistOffer.objects.create(
                entry=entry,
                appointment=appointment,
                offered_at=timezone.now(),
                expires_at=appointment.hold_expires_at,
            )
            entry.status = WaitlistStatus.OFFERED
            entry.save(update_fields=["status"])
            audit_record(
                actor=None,
                action=AuditAction.CREATE,
                obj=offer,
                patient=entry.patient.user,
                detail={"entry": entry.pk, "appointment": appointment.pk},
            )
            hooks.waitlist_offer_made.fire(offer_id=offer.pk)
            return offer
    return None


# --- Answering an offer ------------------------------------------------------------------


def _lock_offer(offer_id: int) -> tuple[WaitlistEntry, WaitlistOffer]:
    """Lock the entry, then the offer (the lock order of this module)."""
    entry_id = WaitlistOffer.objects.values_list("entry_id", flat=True).get(pk=offer_id)
    entry = (
        WaitlistEntry.objects.select_for_update(of=("self",))
        .select_related("patient__user")
        .get(pk=entry_id)
    )
    offer = (
        WaitlistOffer.objects.select_for_update(of=("self",))
        .select_related("appointment")
        .get(pk=offer_id)
    )
    return entry, offer


def waitlist_offer_accept(*, by: User, offer: WaitlistOffer) -> WaitlistOffer:
    """Book the held slot. Accepting twice is harmless; a closed offer raises OfferClosed."""
    with transaction.atomic():
        entry, offer = _lock_offer(offer.pk)
        if not _may_act_for(by, entry.patient) or by is None:
            raise PermissionDenied
        if offer.status == WaitlistOfferStatus.ACCEPTED:
            return offer
        if offer.status != WaitlistOfferStatus.OPEN or offer.expires_at <= timezone.now():
            raise OfferClosed(_("This offer has expired or was already answered."))
        try:
            booking.appointment_book(by=by, appointment=offer.appointment)
        except booking.HoldExpired as exc:
            raise OfferClosed(_("This offer has expired or was already answered.")) from exc
        offer.status = WaitlistOfferStatus.ACCEPTED
        offer.save(update_fields=["status"])
        entry.status = WaitlistStatus.ACCEPTED
        entry.save(update_fields=["status"])
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=offer,
            patient=entry.patient.user,
            detail={"status": WaitlistOfferStatus.ACCEPTED},
        )
    return offer


def waitlist_offer_decline(*, by: User, offer: WaitlistOffer) -> WaitlistOffer:
    """Give the slot back: the hold is cancelled, which offers it to the next in line."""
    with transaction.atomic():
        entry, offer = _lock_offer(offer.pk)
        if not _may_act_for(by, entry.patient) or by is None:
            raise PermissionDenied
        if offer.status == WaitlistOfferStatus.DECLINED:
            return offer
        if offer.status != WaitlistOfferStatus.OPEN:
            raise OfferClosed(_("This offer has expired or was already answered."))
        _release_offer(by=by, offer=offer, status=WaitlistOfferStatus.DECLINED)
        if entry.status == WaitlistStatus.OFFERED:
            entry.status = WaitlistStatus.WAITING
            entry.save(update_fields=["status"])
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=offer,
            patient=entry.patient.user,
            detail={"status": WaitlistOfferStatus.DECLINED},
        )
    return offer


def _release_offer(
    *, by: User | None, offer: WaitlistOffer, status: str, now: datetime | None = None
) -> None:
    """Close an open offer and free its held slot (firing the hooks that offer it on)."""
    now = now or timezone.now()
    appointment = offer.appointment
    if appointment.status == AppointmentStatus.HELD:
        if appointment.hold_expires_at and appointment.hold_expires_at <= now:
            booking.release_expired_holds(now=now, doctor_id=appointment.doctor_id)
        else:
            booking.appointment_cancel(
                by=by,
                appointment=appointment,
                reason="waitlist offer declined"
                if status == WaitlistOfferStatus.DECLINED
                else "waitlist offer expired",
            )
    offer.status = status
    offer.save(update_fields=["status"])


# --- Sweeps ------------------------------------------------------------------------------


def expire_waitlist_offers(*, now: datetime | None = None) -> int:
    """Close offers past their time: the offer EXPIRED, its hold released (which offers
    the slot to the next entry on commit), the entry back to WAITING for later slots.
    One transaction per offer; offers being answered right now are skipped (the next run
    sees them). Returns how many expired."""
    now = now or timezone.now()
    expired = 0
    due = list(
        WaitlistOffer.objects.filter(
            status=WaitlistOfferStatus.OPEN, expires_at__lte=now
        ).values_list("pk", "entry_id")
    )
    for offer_id, entry_id in due:
        with transaction.atomic():
            entry = (
                WaitlistEntry.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("patient__user")
                .filter(pk=entry_id)
                .first()
            )
            if entry is None:
                continue
            offer = (
                WaitlistOffer.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("appointment")
                .filter(pk=offer_id, status=WaitlistOfferStatus.OPEN, expires_at__lte=now)
                .first()
            )
            if offer is None:
                continue
            _release_offer(by=None, offer=offer, status=WaitlistOfferStatus.EXPIRED, now=now)
            if entry.status == WaitlistStatus.OFFERED:
                entry.status = WaitlistStatus.WAITING
                entry.save(update_fields=["status"])
            audit_record(
                actor=None,
                action=AuditAction.CHANGE,
                obj=offer,
                patient=entry.patient.user,
                detail={"status": WaitlistOfferStatus.EXPIRED},
            )
            expired += 1
    return expired


def recently_freed_slots(
    *, now: datetime | None = None, window: timedelta = FREED_SLOT_WINDOW
) -> list[tuple[int, datetime, int]]:
    """(doctor id, start, consultation type id) of future slots freed within `window`
    (cancelled, expired holds, moved away), when anybody is waiting at all.

    Reads the appointments' history by primary key range (the newest RECENT_EVENTS
    rows, then by time), so the sweep stays cheap however long the history grows."""
    now = now or timezone.now()
    if not WaitlistEntry.objects.filter(
        status=WaitlistStatus.WAITING, wanted_before__gt=now
    ).exists():
        return []
    last = AppointmentEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    if last is None:
        return []
    recent = AppointmentEvent.objects.filter(pk__gt=last - RECENT_EVENTS, at__gte=now - window)
    freed_by_status = recent.filter(
        kind=AppointmentEventKind.STATUS,
        to_status__in=[AppointmentStatus.CANCELLED, AppointmentStatus.EXPIRED],
    ).values_list(
        "appointment__doctor_id", "appointment__during", "appointment__consultation_type_id"
    )
    moved_away = recent.filter(kind=AppointmentEventKind.MOVED).values_list(
        "appointment__doctor_id", "from_during", "appointment__consultation_type_id"
    )
    freed: dict[tuple[int, datetime], int] = {}
    for doctor_id, during, ctype_id in [*freed_by_status, *moved_away]:
        if during is not None and during.lower > now + MIN_LEAD:
            freed.setdefault((doctor_id, during.lower), ctype_id)
    return sorted((doctor_id, start, ctype_id) for (doctor_id, start), ctype_id in freed.items())


def offer_recently_freed_slots(*, now: datetime | None = None) -> int:
    """The catch-up half of the sweep: offer freed slots a lost message left unoffered.
    Slots already held again, or offered to everyone who wanted them, are left alone."""
    made = 0
    types = {}
    for doctor_id, starts_at, ctype_id in recently_freed_slots(now=now):
        if ctype_id not in types:
            types[ctype_id] = ConsultationType.objects.get(pk=ctype_id)
        if waitlist_offer_next(
            doctor_id=doctor_id, starts_at=starts_at, consultation_type=types[ctype_id], now=now
        ):
            made += 1
    return made


# --- Hooks -------------------------------------------------------------------------------


def _schedule_offer(doctor_id: int, starts_at: datetime, consultation_type_id: int) -> None:
    """After the commit that freed the slot, ask a worker to offer it (ids only)."""
    if starts_at <= timezone.now() + MIN_LEAD:
        return

    def enqueue() -> None:
        from scheduling.tasks_waitlist import offer_freed_slot

        offer_freed_slot.delay(doctor_id, starts_at.isoformat(), consultation_type_id)

    # robust: a broker outage must not turn the patient's cancellation into an error
    # page; the sweep offers the slot within a minute instead.
    transaction.on_commit(enqueue, robust=True)


def on_appointment_freed(*, appointment_id: int, **_kwargs: object) -> None:
    """Handler for `appointment_cancelled` and `appointment_hold_released`."""
    row = (
        Appointment.objects.filter(pk=appointment_id)
        .values_list("doctor_id", "during", "consultation_type_id")
        .first()
    )
    if row is not None:
        doctor_id, during, ctype_id = row
        _schedule_offer(doctor_id, during.lower, ctype_id)


def on_appointment_rescheduled(
    *, appointment_id: int, previous_start: datetime, **_kwargs: object
) -> None:
    """Handler for `appointment_rescheduled`: the time it left is free now."""
    row = (
        Appointment.objects.filter(pk=appointment_id)
        .values_list("doctor_id", "consultation_type_id")
        .first()
    )
    if row is not None:
        _schedule_offer(row[0], previous_start, row[1])


def connect() -> None:
    """Register the waitlist's hook handlers; called once from SchedulingConfig.ready().
    Registering twice is harmless (a hook keeps each handler once)."""
    hooks.appointment_cancelled.register(on_appointment_freed)
    hooks.appointment_hold_released.register(on_appointment_freed)
    hooks.appointment_rescheduled.register(on_appointment_rescheduled)
