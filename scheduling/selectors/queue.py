"""Reads for the live queue and the waitlist, already filtered to what the user may see.

Objects are found with `*_get_for(user, id)`: 404 for missing and forbidden alike, and a
forbidden try is recorded (DENIED) with the patient it concerned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import Location, PatientProfile, Role, User
from audit.models import AuditAction
from audit.services import audit_record
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    QueueTicket,
    QueueTicketStatus,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistOfferStatus,
    WaitlistStatus,
)
from scheduling.queue import (
    ACTIVE_TICKET_STATUSES,
    can_act_on_ticket,
    can_run_queue,
    service_date_for,
)

# Minutes a patient in the queue takes when no consultation type says otherwise.
DEFAULT_MINUTES_PER_PATIENT = 15
SERVING = (QueueTicketStatus.CALLED, QueueTicketStatus.IN_SERVICE)


def _deny(user: User, obj=None, *, patient: User | None = None, what: str) -> Http404:  # noqa: ANN001
    audit_record(
        actor=user,
        action=AuditAction.DENIED,
        obj=obj,
        object_type="" if obj is not None else "page",
        patient=patient,
        detail={"what": what},
    )
    return Http404()


def _patient_of(user: User) -> PatientProfile | None:
    if not user.is_authenticated or user.role != Role.PATIENT:
        return None
    return getattr(user, "patient_profile", None)


# --- The patient's view: "Booked 14:30" or "Live queue: now seeing 4 of 7, about 25 min" ---


@dataclass(frozen=True)
class QueueStatus:
    """One line of a patient's day. `kind`: booked, waiting, called, in_service, arrived."""

    kind: str
    location_name: str
    doctor_name: str
    local_time: datetime | None = None  # the appointment's start, in the location's zone
    number: int | None = None  # the patient's ticket
    now_seeing: int | None = None  # the ticket called or with the doctor now
    ahead: int = 0  # tickets before the patient's: waiting ones and the one being seen
    minutes: int = 0  # about how long until it is the patient's turn
    time_zone: str = ""  # the location's

    @property
    def position(self) -> int:
        return self.ahead + 1

    @property
    def time_text(self) -> str:
        return f"{self.local_time:%H:%M}" if self.local_time else ""

    @property
    def summary(self) -> str:
        if self.kind == "booked":
            return _("Booked %(time)s") % {"time": self.time_text}
        if self.kind == "arrived":
            return _("Checked in for %(time)s") % {"time": self.time_text}
        if self.kind == "called":
            return _("Live queue: it is your turn, number %(number)s. Please go in.") % {
                "number": self.number
            }
        if self.kind == "in_service":
            return _("Live queue: you are with the doctor.")
        if self.ahead == 0:
            return _("Live queue: you are next, number %(number)s.") % {"number": self.number}
        values = {"now": self.now_seeing, "number": self.number, "minutes": self.minutes}
        if self.now_seeing is not None:
            return _("Live queue: now seeing %(now)s of %(number)s, about %(minutes)s min") % values
        return _("Live queue: your number is %(number)s, about %(minutes)s min") % values

    @property
    def ahead_text(self) -> str:
        return ngettext(
            "%(count)s patient before you", "%(count)s patients before you", self.ahead
        ) % {"count": self.ahead}


def _minutes_for(ticket: QueueTicket) -> int:
    if ticket.appointment_id is not None:
        return ticket.appointment.consultation_type.duration_minutes
    return DEFAULT_MINUTES_PER_PATIENT


def _queue_of(ticket: QueueTicket) -> Q:
    return Q(
        location_id=ticket.location_id,
        service_date=ticket.service_date,
        doctor_id=ticket.doctor_id,
    )


def ticket_position(ticket: QueueTicket, queue: list[QueueTicket]) -> tuple[int | None, int, int]:
    """(now seeing, tickets ahead, minutes until the turn) of `ticket` in its queue.

    Ahead: tickets being seen or called now, and waiting tickets with a smaller number.
    Minutes: the sum of their consultation lengths (15 for walk-ins). Now seeing: the
    ticket called most recently among those called or with the doctor."""
    serving = [t for t in queue if t.status in SERVING]
    now_seeing = None
    if serving:
        latest = max(serving, key=lambda t: (t.called_at or t.created_at, t.number))
        now_seeing = latest.number
    ahead = serving + [
        t for t in queue if t.status == QueueTicketStatus.WAITING and t.number < ticket.number
    ]
    ahead = [t for t in ahead if t.pk != ticket.pk]
    return now_seeing, len(ahead), sum(_minutes_for(t) for t in ahead)


def _doctor_name(doctor: User | None) -> str:
    if doctor is None:
        return ""
    profile = getattr(doctor, "staff_profile", None)
    return profile.full_name if profile is not None else ""


def queue_state_for_patient(user: User) -> list[QueueStatus]:
    """Today's appointments and queue tickets of the signed-in patient, each with its live
    status. Today is each location's own day. A few queries, plus one per open ticket."""
    profile = _patient_of(user)
    if profile is None:
        return []
    now = timezone.now()
    appointments = (
        Appointment.objects.filter(
            patient=profile,
            status__in=[
                AppointmentStatus.BOOKED,
                AppointmentStatus.CONFIRMED,
                AppointmentStatus.ARRIVED,
                AppointmentStatus.IN_PROGRESS,
            ],
            during__overlap=(now - timedelta(hours=36), now + timedelta(hours=36)),
        )
        .select_related("location", "doctor__staff_profile", "consultation_type")
        .order_by("during")
    )
    tickets = list(
        QueueTicket.objects.filter(
            patient=profile,
            status__in=ACTIVE_TICKET_STATUSES,
            service_date__range=(now.date() - timedelta(days=1), now.date() + timedelta(days=1)),
        )
        .select_related("location", "doctor__staff_profile", "appointment__consultation_type")
        .order_by("created_at")
    )
    tickets = [t for t in tickets if t.service_date == service_date_for(t.location, now)]
    with_ticket = {t.appointment_id for t in tickets if t.appointment_id}
    items: list[tuple[datetime, QueueStatus]] = []
    for appointment in appointments:
        location = appointment.location
        if service_date_for(location, appointment.starts_at) != service_date_for(location, now):
            continue
        if appointment.pk in with_ticket:
            continue
        kind = {
            AppointmentStatus.ARRIVED: "arrived",
            AppointmentStatus.IN_PROGRESS: "in_service",
        }.get(appointment.status, "booked")
        items.append(
            (
                appointment.starts_at,
                QueueStatus(
                    kind=kind,
                    location_name=location.name,
                    doctor_name=_doctor_name(appointment.doctor),
                    local_time=timezone.localtime(appointment.starts_at, location.tzinfo),
                    time_zone=location.time_zone,
                ),
            )
        )
    for ticket in tickets:
        queue = list(
            QueueTicket.objects.filter(_queue_of(ticket), status__in=ACTIVE_TICKET_STATUSES)
            .select_related("appointment__consultation_type")
            .order_by("number")
        )
        now_seeing, ahead, minutes = ticket_position(ticket, queue)
        kind = {
            QueueTicketStatus.CALLED: "called",
            QueueTicketStatus.IN_SERVICE: "in_service",
        }.get(ticket.status, "waiting")
        local_time = (
            timezone.localtime(ticket.appointment.starts_at, ticket.location.tzinfo)
            if ticket.appointment_id
            else None
        )
        items.append(
            (
                ticket.appointment.starts_at if ticket.appointment_id else ticket.created_at,
                QueueStatus(
                    kind=kind,
                    location_name=ticket.location.name,
                    doctor_name=_doctor_name(ticket.doctor),
                    local_time=local_time,
                    number=ticket.number,
                    now_seeing=now_seeing,
                    ahead=ahead,
                    minutes=minutes,
                    time_zone=ticket.location.time_zone,
                ),
            )
        )
    items.sort(key=lambda pair: pair[0])
    return [item for _at, item in items]


# --- Staff: a location's queue ---------------------------------------------------------------


def queue_location_get_for_staff(user: User, code: str) -> Location:
    """The location whose queue a staff member opens: reception and administrators any,
    a doctor any (they see only their own tickets there). Others: 404, recorded."""
    if not (can_run_queue(user) or (user.is_authenticated and user.role == Role.DOCTOR)):
        raise _deny(user, what="queue")
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise Http404
    return location


def queue_tickets_for_staff(user: User, location: Location) -> QuerySet[QueueTicket]:
    """Today's tickets at the location: all for queue runners, a doctor's own for them."""
    tickets = QueueTicket.objects.filter(
        location=location, service_date=service_date_for(location)
    ).select_related("doctor__staff_profile", "patient", "appointment")
    if can_run_queue(user, location=location):
        return tickets.order_by("number")
    if user.role == Role.DOCTOR:
        return tickets.filter(doctor=user).order_by("number")
    return tickets.none()


def queue_bookings_to_check_in(user: User, location: Location) -> list[Appointment]:
    """Today's booked appointments at the location without a ticket yet (queue runners)."""
    if not can_run_queue(user, location=location):
        return []
    today = service_date_for(location)
    tz = location.tzinfo
    start = datetime.combine(today, datetime.min.time(), tzinfo=tz)
    end = start + timedelta(days=1)
    return list(
        Appointment.objects.filter(
            location=location,
            status__in=[AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED],
            during__overlap=(start, end),
            queue_ticket__isnull=True,
        )
        .filter(during__startswith__gte=start, during__startswith__lt=end)
        .select_related("patient", "doctor__staff_profile", "consultation_type")
        .order_by("during")
    )


def queue_doctors_at(location: Location) -> QuerySet[User]:
    """Doctors who work at the location (templates or profile), for the walk-in form."""
    return (
        User.objects.filter(role=Role.DOCTOR, is_active=True)
        .filter(Q(working_hours__location=location) | Q(staff_profile__location=location))
        .select_related("staff_profile")
        .distinct()
        .order_by("staff_profile__full_name")
    )


def queue_ticket_get_for(user: User, ticket_id: int) -> QueueTicket:
    """A ticket a staff member may act on (queue runners, or its doctor)."""
    ticket = (
        QueueTicket.objects.select_related("location", "patient__user", "doctor")
        .filter(pk=ticket_id)
        .first()
    )
    if ticket is None or not can_act_on_ticket(user, ticket):
        if ticket is not None:
            raise _deny(
                user,
                ticket,
                patient=ticket.patient.user if ticket.patient_id else None,
                what="queue_ticket",
            )
        raise Http404
    return ticket


def queue_appointment_for_check_in(user: User, code: str, public_id) -> Appointment:  # noqa: ANN001
    """A booked appointment at the location that reception is about to check in."""
    appointment = (
        Appointment.objects.select_related("patient__user", "location")
        .filter(public_id=public_id, location__code=code)
        .first()
    )
    if appointment is None or not can_run_queue(user, location=appointment.location):
        if appointment is not None:
            raise _deny(user, appointment, patient=appointment.patient.user, what="queue_check_in")
        raise Http404
    return appointment


# --- Public display: numbers only ---------------------------------------------------------


@dataclass(frozen=True)
class DisplayBoard:
    """What a waiting-room screen shows: ticket numbers, nothing else."""

    called: list[int]
    in_service: list[int]
    waiting: list[int]


def queue_display_board(location: Location) -> DisplayBoard:
    rows = list(
        QueueTicket.objects.filter(
            location=location,
            service_date=service_date_for(location),
            status__in=ACTIVE_TICKET_STATUSES,
        )
        .order_by("number")
        .values_list("number", "status", "called_at")
    )
    called = sorted(
        (r for r in rows if r[1] == QueueTicketStatus.CALLED),
        key=lambda r: r[2] or timezone.now(),
        reverse=True,
    )
    return DisplayBoard(
        called=[r[0] for r in called],
        in_service=[r[0] for r in rows if r[1] == QueueTicketStatus.IN_SERVICE],
        waiting=[r[0] for r in rows if r[1] == QueueTicketStatus.WAITING],
    )


def queue_display_location(code: str) -> Location:
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise Http404
    return location


# --- Waitlist ------------------------------------------------------------------------------


def waitlist_entries_for_patient(user: User) -> QuerySet[WaitlistEntry]:
    profile = _patient_of(user)
    if profile is None:
        return WaitlistEntry.objects.none()
    return (
        WaitlistEntry.objects.filter(patient=profile)
        .filter(
            Q(status__in=[WaitlistStatus.WAITING, WaitlistStatus.OFFERED])
            | Q(created_at__gte=timezone.now() - timedelta(days=30))
        )
        .select_related("doctor__staff_profile", "specialty", "consultation_type")
        .order_by("-created_at")
    )


def waitlist_open_offers_for_patient(user: User) -> QuerySet[WaitlistOffer]:
    profile = _patient_of(user)
    if profile is None:
        return WaitlistOffer.objects.none()
    return (
        WaitlistOffer.objects.filter(
            entry__patient=profile,
            status=WaitlistOfferStatus.OPEN,
            expires_at__gt=timezone.now(),
        )
        .select_related(
            "appointment__location",
            "appointment__doctor__staff_profile",
            "entry__consultation_type",
        )
        .order_by("expires_at")
    )


def waitlist_entry_get_for(user: User, entry_id: int) -> WaitlistEntry:
    """The patient's own entry."""
    entry = WaitlistEntry.objects.select_related("patient__user").filter(pk=entry_id).first()
    if entry is None or not _may_see_waitlist_of(user, entry.patient):
        if entry is not None:
            raise _deny(user, entry, patient=entry.patient.user, what="waitlist_entry")
        raise Http404
    return entry


def waitlist_offer_get_for(user: User, offer_id: int) -> WaitlistOffer:
    """An offer: only its patient answers it."""
    offer = (
        WaitlistOffer.objects.select_related("entry__patient__user", "appointment")
        .filter(pk=offer_id)
        .first()
    )
    profile = _patient_of(user)
    if offer is None or profile is None or offer.entry.patient_id != profile.pk:
        if offer is not None:
            raise _deny(user, offer, patient=offer.entry.patient.user, what="waitlist_offer")
        raise Http404
    return offer


def _may_see_waitlist_of(user: User, patient: PatientProfile) -> bool:
    profile = _patient_of(user)
    return profile is not None and profile.pk == patient.pk
