"""The live queue: walk-in tickets beside pre-booked patients who arrived, called, seen.

Every write to queue tickets goes through these services (`<entity>_<verb>(*, by=...)`,
one transaction each, audited in the same transaction).

- Numbers are per location and per day in the location's own time zone, counted from 1.
  Issuing takes a transaction-level advisory lock on the location first, so two desks
  issuing at once never get the same number; the unique constraint stays the safety net.
- A ticket belongs to one doctor's queue, or to the location's general queue when no
  doctor is given. Tickets are served in number order (arrival order), but staff may call
  any waiting ticket (a booked patient whose time has come, an emergency).
- Reception and administrators run every queue; a doctor runs their own; patients never.
- A ticket linked to an appointment moves the appointment along: check-in marks it
  arrived, "start" marks it in progress, "done" by the doctor completes it. Reception's
  "done" leaves the appointment in progress for the doctor to complete; a no-show of an
  arrived patient leaves the appointment as arrived (it was kept, the patient left).

Lock order (to never deadlock with booking and the audit chain): location lock, then
appointment and ticket rows, then the audit chain lock (taken by `audit_record`).
"""

from __future__ import annotations

from datetime import date

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import policies
from accounts.models import Location, PatientProfile, Role, User
from audit.models import AuditAction
from audit.services import audit_record
from scheduling import services as booking
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    QueueTicket,
    QueueTicketStatus,
)

# Class id of the two-key advisory lock that serialises ticket numbers per location
# (booking uses 4201 per doctor; the audit chain a 64-bit key).
QUEUE_LOCK_CLASS = 4202
QUEUE_RUNNERS = {Role.RECEPTION, Role.ADMIN}
ACTIVE_TICKET_STATUSES = (
    QueueTicketStatus.WAITING,
    QueueTicketStatus.CALLED,
    QueueTicketStatus.IN_SERVICE,
)
# Appointments reception may check in (turn into a queue ticket).
CHECK_IN_STATUSES = (
    AppointmentStatus.BOOKED,
    AppointmentStatus.CONFIRMED,
    AppointmentStatus.ARRIVED,
)

# Which ticket statuses each action accepts, and what it makes of them.
TICKET_TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "call": ({QueueTicketStatus.WAITING, QueueTicketStatus.CALLED}, QueueTicketStatus.CALLED),
    "start": (
        {QueueTicketStatus.WAITING, QueueTicketStatus.CALLED},
        QueueTicketStatus.IN_SERVICE,
    ),
    "done": ({QueueTicketStatus.CALLED, QueueTicketStatus.IN_SERVICE}, QueueTicketStatus.DONE),
    "no_show": ({QueueTicketStatus.WAITING, QueueTicketStatus.CALLED}, QueueTicketStatus.NO_SHOW),
}


def service_date_for(location: Location, at=None) -> date:  # noqa: ANN001
    """The queue's day: today in the location's time zone."""
    return timezone.localtime(at or timezone.now(), location.tzinfo).date()


# The rules live in accounts.policies, the one place that decides access.
can_run_queue = policies.can_run_queue
can_act_on_ticket = policies.can_act_on_ticket


def _lock_location_queue(location_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [QUEUE_LOCK_CLASS, location_id])


def _next_number(location: Location, service_date: date) -> int:
    last = QueueTicket.objects.filter(location=location, service_date=service_date).aggregate(
        last=Max("number")
    )["last"]
    return (last or 0) + 1


def _create_ticket(
    *,
    location: Location,
    doctor: User | None,
    patient: PatientProfile | None,
    appointment: Appointment | None,
) -> QueueTicket:
    """Insert with the next number; the caller holds the location lock. Retries on the
    unique constraint in case a writer that skipped the lock took the number."""
    service_date = service_date_for(location)
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return QueueTicket.objects.create(
                    location=location,
                    doctor=doctor,
                    patient=patient,
                    appointment=appointment,
                    service_date=service_date,
                    number=_next_number(location, service_date),
                )
        except IntegrityError as exc:
            if "queue_ticket_number_per_location_day" not in str(exc):
                raise
    raise ValidationError(_("The queue is busy. Please try again."))


def _check_doctor(doctor: User | None) -> None:
    if doctor is not None and (doctor.role != Role.DOCTOR or not doctor.is_active):
        raise ValidationError({"doctor": _("Choose a doctor from the list.")})


def queue_ticket_issue(
    *,
    by: User,
    location: Location,
    doctor: User | None = None,
    patient: PatientProfile | None = None,
) -> QueueTicket:
    """A walk-in ticket for today at `location`, optionally for one doctor and linked to a
    patient (found by reception, e.g. by SNILS)."""
    if not can_run_queue(by, location=location):
        raise PermissionDenied
    _check_doctor(doctor)
    with transaction.atomic():
        _lock_location_queue(location.pk)
        ticket = _create_ticket(location=location, doctor=doctor, patient=patient, appointment=None)
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=ticket,
            patient=patient.user if patient is not None else None,
            detail={"number": ticket.number, "walk_in": True},
        )
    return ticket


def queue_check_in(*, by: User, appointment: Appointment) -> QueueTicket:
    """Reception marks a pre-booked patient arrived and gives them a ticket in their
    doctor's queue. Checking in twice returns the same ticket."""
    if not can_run_queue(by, location=appointment.location):
        raise PermissionDenied
    location = Location.objects.get(pk=appointment.location_id)
    with transaction.atomic():
        _lock_location_queue(location.pk)  # first: see the lock order in the docstring
        appointment = (
            Appointment.objects.select_for_update(of=("self",))
            .select_related("patient__user")
            .get(pk=appointment.pk)
        )
        existing = QueueTicket.objects.filter(appointment=appointment).first()
        if existing is not None:
            return existing
        if appointment.status not in CHECK_IN_STATUSES:
            raise ValidationError(
                _("An appointment that is “%(status)s” cannot be checked in.")
                % {"status": appointment.get_status_display()}
            )
        if service_date_for(location, appointment.starts_at) != service_date_for(location):
            raise ValidationError(_("Only today's appointments can be checked in."))
        if appointment.status != AppointmentStatus.ARRIVED:
            booking.appointment_set_status(
                by=by, appointment=appointment, status=AppointmentStatus.ARRIVED
            )
        ticket = _create_ticket(
            location=location,
            doctor=appointment.doctor,
            patient=appointment.patient,
            appointment=appointment,
        )
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=ticket,
            patient=appointment.patient.user,
            detail={"number": ticket.number, "appointment": appointment.pk},
        )
    return ticket


def _ticket_move(*, by: User, ticket: QueueTicket, action: str) -> QueueTicket:
    allowed_from, target = TICKET_TRANSITIONS[action]
    with transaction.atomic():
        ticket = (
            QueueTicket.objects.select_for_update(of=("self",))
            .select_related("location", "patient__user", "appointment")
            .get(pk=ticket.pk)
        )
        if not can_act_on_ticket(by, ticket):
            raise PermissionDenied
        if ticket.status == target:
            return ticket  # a double click or a retried request
        if ticket.status not in allowed_from:
            raise ValidationError(
                _("Ticket %(number)s is “%(status)s” and cannot be changed that way.")
                % {"number": ticket.number, "status": ticket.get_status_display()}
            )
        previous = ticket.status
        now = timezone.now()
        ticket.status = target
        fields = ["status"]
        if target in (QueueTicketStatus.CALLED, QueueTicketStatus.IN_SERVICE) and (
            ticket.called_at is None or target == QueueTicketStatus.CALLED
        ):
            ticket.called_at = now
            fields.append("called_at")
        if target in (QueueTicketStatus.DONE, QueueTicketStatus.NO_SHOW):
            ticket.done_at = now
            fields.append("done_at")
        _follow_appointment(by=by, ticket=ticket, target=target)
        ticket.save(update_fields=fields)
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=ticket,
            patient=ticket.patient.user if ticket.patient_id else None,
            detail={"from": previous, "to": target, "number": ticket.number},
        )
    return ticket


def _follow_appointment(*, by: User, ticket: QueueTicket, target: str) -> None:
    """Keep a linked appointment's status in step with its ticket (see the docstring)."""
    appointment = ticket.appointment
    if appointment is None:
        return
    status = appointment.status
    wanted = None
    if target == QueueTicketStatus.IN_SERVICE and status == AppointmentStatus.ARRIVED:
        wanted = AppointmentStatus.IN_PROGRESS
    elif (
        target == QueueTicketStatus.DONE
        and by.role == Role.DOCTOR
        and status in (AppointmentStatus.ARRIVED, AppointmentStatus.IN_PROGRESS)
    ):
        wanted = AppointmentStatus.COMPLETED
    if wanted is not None:
        booking.appointment_set_status(by=by, appointment=appointment, status=wanted)


def queue_call(*, by: User, ticket: QueueTicket) -> QueueTicket:
    """Call the ticket's holder in (it shows on the display and the patient's page)."""
    return _ticket_move(by=by, ticket=ticket, action="call")


def queue_start(*, by: User, ticket: QueueTicket) -> QueueTicket:
    """The patient is with the doctor."""
    return _ticket_move(by=by, ticket=ticket, action="start")


def queue_done(*, by: User, ticket: QueueTicket) -> QueueTicket:
    return _ticket_move(by=by, ticket=ticket, action="done")


def queue_no_show(*, by: User, ticket: QueueTicket) -> QueueTicket:
    return _ticket_move(by=by, ticket=ticket, action="no_show")


TICKET_ACTIONS = {
    "call": queue_call,
    "start": queue_start,
    "done": queue_done,
    "no_show": queue_no_show,
}
