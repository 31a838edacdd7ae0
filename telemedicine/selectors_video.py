"""Reads for video consultations, already limited to what the asking user may see.

`video_appointment_get_for` is the single path to a consultation for a page or a
token: the appointment's patient and doctor only (`accounts.policies`), a video
appointment, the patient's telemedicine consent and verified identity, and for joining
the time window. Everyone and everything else gets a 404, the same for a missing and a
forbidden appointment, and a DENIED audit row naming the reason (in the audit trail
only, never in the answer). Page loads are recorded as views; status polls are not
(the page load is).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from accounts import policies
from accounts.models import Role
from accounts.selectors import consent_given
from audit.models import AuditAction
from audit.services import audit_record
from scheduling.models import Appointment, ConsultationMode
from telemedicine.models import (
    Consultation,
    ConsultationParty,
    ConsultationState,
    RecordingConsent,
)

WAITING_LIST_HOURS_BACK = 2
WAITING_LIST_HOURS_AHEAD = 12


# --- Recording access -------------------------------------------------------------------


def deny(user: Any, what: str, *, obj: Any = None, patient: Any = None, **detail: Any) -> Http404:
    """A refusal: recorded (with the patient concerned, if any) and answered like a page
    that does not exist, so appointments cannot be probed."""
    audit_record(
        actor=user,
        action=AuditAction.DENIED,
        obj=obj,
        object_type="" if obj is not None else "page",
        patient=patient,
        detail={"what": what, **detail},
    )
    return Http404()


def _public_id(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def refusal_reason(user: Any, appointment: Appointment, *, join: bool, now: datetime) -> str:
    """Why `accounts.policies` refuses (for the audit trail), or "" if it allows."""
    party = party_of(user, appointment)
    if not party:
        return "not_a_participant"
    if not policies.is_video_appointment(appointment):
        return "not_video"
    allowed = policies.VIDEO_JOINABLE_STATUSES if join else policies.VIDEO_VISIBLE_STATUSES
    if appointment.status not in allowed:
        return f"status_{appointment.status}"
    if not consent_given(appointment.patient, "telemedicine"):
        return "no_telemedicine_consent"
    if not appointment.patient.identity_verified:
        return "identity_not_verified"
    if join:
        opens, closes = policies.video_join_window(appointment)
        if now < opens:
            return "too_early"
        if now > closes:
            return "too_late"
    return ""


def party_of(user: Any, appointment: Appointment) -> str:
    if not getattr(user, "is_authenticated", False):
        return ""
    if user.role == Role.PATIENT and appointment.patient.user_id == user.pk:
        return ConsultationParty.PATIENT
    if user.role == Role.DOCTOR and appointment.doctor_id == user.pk:
        return ConsultationParty.DOCTOR
    return ""


def video_appointment_get_for(
    user: Any,
    public_id: Any,
    *,
    what: str = "video_room",
    join: bool = False,
    record: bool = True,
    now: datetime | None = None,
) -> Appointment:
    """The video appointment behind a consultation page (`join=False`) or a room token
    (`join=True`, which also needs the time window); 404 + DENIED otherwise."""
    now = now or timezone.now()
    key = _public_id(public_id)
    appointment = (
        Appointment.objects.select_related(
            "patient__user",
            "doctor__staff_profile",
            "consultation_type",
            "location",
        )
        .filter(public_id=key)
        .first()
        if key is not None
        else None
    )
    if appointment is None:
        raise deny(user, what, reason="missing")
    allowed = (
        policies.can_join_consultation(user, appointment, now=now)
        if join
        else policies.can_view_consultation(user, appointment)
    )
    if not allowed:
        raise deny(
            user,
            what,
            obj=appointment,
            patient=appointment.patient.user,
            reason=refusal_reason(user, appointment, join=join, now=now) or "policy",
        )
    if record:
        audit_record(
            actor=user,
            action=AuditAction.VIEW,
            obj=appointment,
            patient=appointment.patient.user,
            detail={"what": what},
        )
    return appointment


def consultation_for(appointment: Appointment) -> Consultation | None:
    return Consultation.objects.filter(appointment=appointment).first()


# --- Status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoStatus:
    """What the waiting room shows: a key ("early", "waiting", "doctor_joined",
    "in_progress", "ended"), a label and a sentence for the viewer, a badge variant (a
    word and a glyph: never colour alone) and the times the countdown needs."""

    key: str
    label: str
    message: str
    variant: str
    opens_at: datetime
    starts_at: datetime
    ends_at: datetime
    closes_at: datetime
    can_join: bool
    doctor_joined: bool
    patient_waiting: bool
    version: str = field(default="")


def video_status(
    consultation: Consultation | None,
    appointment: Appointment,
    *,
    viewer_party: str,
    now: datetime | None = None,
) -> VideoStatus:
    now = now or timezone.now()
    opens, closes = policies.video_join_window(appointment)
    state = consultation.state if consultation is not None else ConsultationState.SCHEDULED
    final = consultation is not None and consultation.is_final
    ended = (
        final
        or now > closes
        or appointment.status not in policies.VIDEO_JOINABLE_STATUSES
        or state == ConsultationState.ENDED
    )
    doctor_in = state in (ConsultationState.DOCTOR_JOINED, ConsultationState.IN_PROGRESS)
    patient_in = state in (ConsultationState.WAITING, ConsultationState.IN_PROGRESS)
    patient = viewer_party == ConsultationParty.PATIENT
    if ended:
        key, variant, label = "ended", "neutral", _("Ended")
        message = _("This video consultation has ended.")
        if (
            consultation is not None
            and consultation.end_reason == "room_finished"
            and now <= closes
        ):
            message = _(
                "Everyone has left the call. You can go back in until %(time)s if you were cut off."
            ) % {"time": _clock(closes, appointment)}
    elif now < opens:
        key, variant, label = "early", "info", _("Early")
        message = _("You are early. The room opens at %(opens)s, 15 minutes before the start.") % {
            "opens": _clock(opens, appointment)
        }
    elif state == ConsultationState.IN_PROGRESS:
        key, variant, label = "in_progress", "success", _("In progress")
        message = _("The consultation is in progress.")
    elif doctor_in:
        key, variant, label = "doctor_joined", "success", _("Doctor joined")
        if patient:
            message = _("Your doctor has joined. The consultation is starting.")
        elif consultation is not None and consultation.patient_joined_at is not None:
            message = _("You are in the room. The patient is in the waiting room.")
        else:
            message = _("You are in the room. The patient has not come in yet.")
    else:
        key, variant, label = "waiting", "pending", _("Waiting for the doctor")
        if patient:
            message = _("You are in the waiting room. Your doctor will join you shortly.")
        elif patient_in:
            label = _("Patient waiting")
            message = _("The patient is in the waiting room.")
        else:
            label = _("Room open")
            message = _("The room is open. The patient has not come in yet.")
    # A room everyone left (room_finished) may be entered again inside the window.
    can_join = (
        not final
        and appointment.status in policies.VIDEO_JOINABLE_STATUSES
        and opens <= now <= closes
    )
    version = f"{key}:{int(can_join)}:{int(doctor_in)}:{int(patient_in)}"
    return VideoStatus(
        key=key,
        label=label,
        message=message,
        variant=variant,
        opens_at=opens,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        closes_at=closes,
        can_join=can_join,
        doctor_joined=doctor_in,
        patient_waiting=patient_in,
        version=version,
    )


def _zone(appointment: Appointment) -> ZoneInfo:
    return ZoneInfo(getattr(appointment.location, "time_zone", "") or settings.CLINIC_TIME_ZONE)


def _clock(moment: datetime, appointment: Appointment) -> str:
    return formats.time_format(moment.astimezone(_zone(appointment)), "H:i")


def when_text(appointment: Appointment) -> str:
    zone = _zone(appointment)
    local = appointment.starts_at.astimezone(zone)
    return f"{formats.date_format(local, 'l, j E Y, H:i')} ({zone.key})"


# --- Recording consents -----------------------------------------------------------------


def recording_consents(consultation: Consultation | None) -> dict[str, RecordingConsent | None]:
    found = {party: None for party in ConsultationParty.values}
    if consultation is not None:
        for consent in RecordingConsent.objects.filter(consultation=consultation):
            found[consent.party] = consent
    return found


def recording_allowed(consultation: Consultation | None) -> bool:
    """Recording may start only when both the patient and the doctor consent."""
    consents = recording_consents(consultation)
    return all(c is not None and c.in_force for c in consents.values())


# --- The doctor's list ------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingRow:
    appointment: Appointment
    consultation: Consultation | None
    status: VideoStatus
    time_text: str
    patient_name: str
    waiting_since: str
    ready: bool


def _doctor_video_appointments(doctor: Any, now: datetime) -> QuerySet[Appointment]:
    return (
        Appointment.objects.filter(
            doctor=doctor,
            consultation_type__mode=ConsultationMode.VIDEO,
            status__in=sorted(policies.VIDEO_JOINABLE_STATUSES),
        )
        .filter(
            Q(during__startswith__lte=now + timedelta(hours=WAITING_LIST_HOURS_AHEAD))
            & Q(during__endswith__gte=now - timedelta(hours=WAITING_LIST_HOURS_BACK))
        )
        .select_related("patient__user", "consultation_type", "location", "video_consultation")
        .order_by("during")
    )


def video_waiting_list_for(user: Any, *, now: datetime | None = None, record: bool = True) -> list:
    """A doctor's video consultations of the next hours, patients waiting first. Each
    row says whether the patient can come in (consent and identity), never why not."""
    if not policies.can_view_video_waiting_list(user):
        raise deny(user, "video_waiting_list")
    now = now or timezone.now()
    rows = []
    for appointment in _doctor_video_appointments(user, now):
        consultation = getattr(appointment, "video_consultation", None)
        status = video_status(
            consultation, appointment, viewer_party=ConsultationParty.DOCTOR, now=now
        )
        since = consultation.patient_joined_at if consultation is not None else None
        rows.append(
            WaitingRow(
                appointment=appointment,
                consultation=consultation,
                status=status,
                time_text=_clock(appointment.starts_at, appointment),
                patient_name=appointment.patient.short_name(),
                waiting_since=_clock(since, appointment)
                if since and status.patient_waiting
                else "",
                ready=policies.video_patient_ready(appointment.patient),
            )
        )
    rows.sort(key=lambda r: (not r.status.patient_waiting, r.appointment.starts_at))
    if record and rows:
        audit_record(
            actor=user,
            action=AuditAction.VIEW,
            object_type="telemedicine.waiting_list",
            detail={
                "what": "video_waiting_list",
                "list": True,
                "ids": [str(r.appointment.pk) for r in rows][:200],
            },
        )
    return rows
