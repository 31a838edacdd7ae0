"""Every write to video consultations: rooms, joining (a room token), ending, recording
consents, and LiveKit's webhook events.

Keyword-only arguments, the acting user first (`by=`; None for the system and for
LiveKit), `accounts.policies` decides (PermissionDenied otherwise), one transaction per
call with its audit event recorded last, under a row lock on the consultation so two
webhooks or a webhook and a join never interleave.

Joining is the only way to a token: the caller is the appointment's patient or doctor,
inside the window, the patient consented and verified (`can_join_consultation`). The
token names the consultation's room and the user's id; it is returned, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import policies
from audit.models import AuditAction
from audit.services import audit_record
from scheduling.models import Appointment
from telemedicine import livekit
from telemedicine.models import (
    Consultation,
    ConsultationEndReason,
    ConsultationParty,
    ConsultationState,
    LiveKitWebhookEvent,
    RecordingConsent,
)
from telemedicine.selectors_video import party_of

S = ConsultationState


# --- Rooms -------------------------------------------------------------------------------


def consultation_ensure(*, by: Any | None = None, appointment: Appointment) -> Consultation:
    """The consultation (and its random room name) of a video appointment, made once.
    Called when a video appointment is booked, and by the pages for older ones."""
    if not policies.is_video_appointment(appointment):
        raise ValidationError(_("This is not a video appointment."))
    existing = Consultation.objects.filter(appointment=appointment).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            consultation = Consultation.objects.create(appointment=appointment)
            audit_record(
                actor=by,
                action=AuditAction.CREATE,
                obj=consultation,
                patient=appointment.patient.user,
                detail={"what": "video_consultation", "appointment": appointment.pk},
            )
    except IntegrityError:
        # Made at the same moment by someone else (the OneToOne is unique).
        return Consultation.objects.get(appointment=appointment)
    return consultation


def _locked(appointment: Appointment) -> Consultation:
    consultation_ensure(appointment=appointment)
    return Consultation.objects.select_for_update().get(appointment=appointment)


def _presence_state(consultation: Consultation) -> str:
    """The state that who is connected implies (when someone is)."""
    if consultation.patient_connected and consultation.doctor_connected:
        return S.IN_PROGRESS
    if consultation.doctor_connected:
        return S.DOCTOR_JOINED
    if consultation.patient_connected:
        return S.WAITING
    return consultation.state


# --- Joining -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinResult:
    consultation: Consultation
    party: str
    token: livekit.RoomToken | None  # None: LiveKit keys not configured


def consultation_join(
    *, by: Any, appointment: Appointment, now: datetime | None = None
) -> JoinResult:
    """The patient enters the waiting room, or the doctor opens the room: records the
    arrival (the waiting room's state) and mints a short-lived room token for them."""
    now = now or timezone.now()
    if not policies.can_join_consultation(by, appointment, now=now):
        raise PermissionDenied
    party = party_of(by, appointment)
    with transaction.atomic():
        consultation = _locked(appointment)
        if consultation.is_final:
            raise ValidationError(_("This video consultation has ended."))
        previous = consultation.state
        if consultation.state == S.ENDED:
            # Everyone had left (a dropped call): the room opens again for the window.
            consultation.state = S.SCHEDULED
            consultation.ended_at = None
            consultation.end_reason = ""
        if party == ConsultationParty.PATIENT:
            consultation.patient_joined_at = consultation.patient_joined_at or now
            if consultation.state == S.SCHEDULED:
                consultation.state = S.WAITING
        else:
            consultation.doctor_joined_at = consultation.doctor_joined_at or now
            if consultation.state in (S.SCHEDULED, S.WAITING):
                consultation.state = S.DOCTOR_JOINED
        consultation.save()
        token = None
        if livekit.configured():
            token = livekit.room_token_mint(
                room_name=consultation.room_name,
                identity=str(by.pk),
                name=by.display_name(),
            )
        audit_record(
            actor=by,
            action=AuditAction.VIEW,
            obj=consultation,
            patient=appointment.patient.user,
            detail={
                "what": "video_token",
                "party": party,
                "from": previous,
                "to": consultation.state,
                "token_minted": token is not None,
                "ttl_seconds": int(token.ttl.total_seconds()) if token else 0,
            },
        )
    return JoinResult(consultation=consultation, party=party, token=token)


def _close_room_on_commit(consultation: Consultation) -> None:
    from telemedicine.tasks_video import close_livekit_room

    if livekit.media_enabled():
        room = consultation.room_name
        transaction.on_commit(lambda: close_livekit_room.delay(room))


def consultation_end(*, by: Any, appointment: Appointment) -> Consultation:
    """The doctor ends the consultation for both: no new token is minted for it and the
    LiveKit room is closed (after the commit)."""
    if not policies.can_end_consultation(by, appointment):
        raise PermissionDenied
    with transaction.atomic():
        consultation = _locked(appointment)
        if consultation.is_final:
            return consultation
        previous = consultation.state
        consultation.state = S.ENDED
        consultation.ended_at = timezone.now()
        consultation.end_reason = ConsultationEndReason.DOCTOR
        consultation.patient_connected = consultation.doctor_connected = False
        consultation.save()
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=consultation,
            patient=appointment.patient.user,
            detail={"what": "video_consultation", "from": previous, "to": S.ENDED, "by": "doctor"},
        )
        _close_room_on_commit(consultation)
    return consultation


def consultation_close_for_appointment(*, appointment_id: int, reason: str) -> None:
    """The appointment was cancelled (or otherwise will not take place): close the
    consultation for good. Runs inside scheduling's transaction (its hook)."""
    with transaction.atomic():
        consultation = (
            Consultation.objects.select_for_update()
            .select_related("appointment__patient__user")
            .filter(appointment_id=appointment_id)
            .first()
        )
        if consultation is None or consultation.is_final:
            return
        previous = consultation.state
        consultation.state = S.ENDED
        consultation.ended_at = timezone.now()
        consultation.end_reason = ConsultationEndReason.CANCELLED
        consultation.patient_connected = consultation.doctor_connected = False
        consultation.save()
        audit_record(
            actor=None,
            action=AuditAction.CHANGE,
            obj=consultation,
            patient=consultation.appointment.patient.user,
            detail={"what": "video_consultation", "from": previous, "to": S.ENDED, "why": reason},
        )
        _close_room_on_commit(consultation)


# --- Recording consent ----------------------------------------------------------------------


def recording_consent_set(*, by: Any, appointment: Appointment, give: bool) -> RecordingConsent:
    """A party gives or withdraws their own consent to recording. Nothing is recorded
    without both parties' consent in force (`selectors_video.recording_allowed`)."""
    if not policies.can_consent_to_recording(by, appointment):
        raise PermissionDenied
    party = party_of(by, appointment)
    with transaction.atomic():
        consultation = _locked(appointment)
        consent = RecordingConsent.objects.filter(consultation=consultation, party=party).first()
        now = timezone.now()
        created = consent is None
        if consent is None:
            consent = RecordingConsent(consultation=consultation, party=party, user=by)
        if give:
            consent.given_at, consent.withdrawn_at, consent.user = now, None, by
        elif consent.pk is None:
            raise ValidationError(_("You have not consented to recording."))
        else:
            consent.withdrawn_at = consent.withdrawn_at or now
        consent.save()
        audit_record(
            actor=by,
            action=AuditAction.CREATE if created else AuditAction.CHANGE,
            obj=consent,
            patient=appointment.patient.user,
            detail={"what": "recording_consent", "party": party, "given": bool(give)},
        )
    return consent


# --- LiveKit's webhooks -------------------------------------------------------------------

HANDLED_EVENTS = ("room_started", "participant_joined", "participant_left", "room_finished")


def _occurred(event: Any) -> datetime | None:
    seconds = int(getattr(event, "created_at", 0) or 0)
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds > 0 else None


def livekit_event_apply(*, event: Any) -> LiveKitWebhookEvent | None:
    """Apply one verified webhook event (a livekit.protocol WebhookEvent). Idempotent by
    its id: a redelivered event is stored once and changes nothing (returns None).
    Events of rooms that are not ours are stored and otherwise ignored."""
    event_id = (event.id or "").strip()
    if not event_id:
        raise ValidationError("A LiveKit event without an id.")
    kind = event.event
    room_name = event.room.name if event.HasField("room") else ""
    identity = event.participant.identity if event.HasField("participant") else ""
    occurred = _occurred(event)
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = LiveKitWebhookEvent.objects.create(
                    event_id=event_id[:100],
                    event=kind[:40],
                    room_name=room_name[:80],
                    participant_identity=identity[:64],
                    occurred_at=occurred,
                )
        except IntegrityError:
            return None  # seen before
        consultation = (
            Consultation.objects.select_for_update()
            .select_related("appointment__patient__user")
            .filter(room_name=room_name)
            .first()
            if room_name
            else None
        )
        if consultation is None or kind not in HANDLED_EVENTS:
            return row
        row.consultation = consultation
        appointment = consultation.appointment
        patient_user = appointment.patient.user
        actor = None
        party = ""
        if identity:
            if identity == str(patient_user.pk):
                party, actor = ConsultationParty.PATIENT, patient_user
            elif identity == str(appointment.doctor_id):
                party, actor = ConsultationParty.DOCTOR, appointment.doctor
        previous = consultation.state
        at = occurred or timezone.now()
        if kind == "room_started":
            consultation.room_sid = (event.room.sid or "")[:64]
        elif kind == "participant_joined" and party and not consultation.is_final:
            if consultation.state == S.ENDED:
                consultation.ended_at, consultation.end_reason = None, ""
            setattr(consultation, f"{party}_connected", True)
            if getattr(consultation, f"{party}_joined_at") is None:
                setattr(consultation, f"{party}_joined_at", at)
            consultation.state = _presence_state(consultation)
            if consultation.state == S.IN_PROGRESS and consultation.started_at is None:
                consultation.started_at = at
        elif kind == "participant_left" and party and not consultation.is_final:
            setattr(consultation, f"{party}_connected", False)
            if consultation.state != S.ENDED:
                implied = _presence_state(consultation)
                if not (consultation.patient_connected or consultation.doctor_connected):
                    # Nobody left in the call: back to waiting for both (the window
                    # decides when it is over; room_finished ends it).
                    implied = S.SCHEDULED if consultation.started_at is None else S.IN_PROGRESS
                consultation.state = implied
        elif kind == "room_finished" and not consultation.is_final:
            consultation.patient_connected = consultation.doctor_connected = False
            consultation.state = S.ENDED
            consultation.ended_at = at
            consultation.end_reason = ConsultationEndReason.ROOM_FINISHED
        row.applied = True
        consultation.save()
        row.save(update_fields=["consultation", "applied"])
        if identity and not party:
            detail_who = {"unknown_identity": identity[:64]}
        else:
            detail_who = {"party": party} if party else {}
        audit_record(
            actor=actor,
            action=AuditAction.CHANGE,
            obj=consultation,
            patient=patient_user,
            detail={
                "what": "video_consultation",
                "via": "livekit_webhook",
                "event": kind,
                "event_id": event_id[:100],
                "from": previous,
                "to": consultation.state,
                **detail_who,
            },
        )
    return row
