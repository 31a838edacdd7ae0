"""Video consultations: rooms, waiting-room state, recording consents, LiveKit webhook
events.

One `Consultation` per video appointment (scheduling's `Appointment` whose consultation
type's mode is "video"). Its LiveKit room is named by a random value of its own, never
by the appointment's ids, so knowing an appointment's link does not name its room.
Tokens for the room are minted by this server only (telemedicine.livekit) and are not
stored. The state follows the people, first from the portal (a participant asking for a
token) and then from LiveKit's signed webhooks (who is connected, the room finishing):

    scheduled → waiting (the patient is in) → doctor_joined → in_progress → ended
                     ↖──────────── someone left ───────────↙

"Early" is not a state: it is `scheduled` before the room opens (15 minutes before the
start), worked out from the clock when shown.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = [
    "Consultation",
    "ConsultationEndReason",
    "ConsultationParty",
    "ConsultationState",
    "LiveKitWebhookEvent",
    "RecordingConsent",
    "new_room_name",
]


def new_room_name() -> str:
    """An unguessable room name: 192 random bits, unrelated to any id of ours."""
    return f"consult-{secrets.token_urlsafe(24)}"


class ConsultationState(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    WAITING = "waiting", _("Patient waiting for the doctor")
    DOCTOR_JOINED = "doctor_joined", _("Doctor joined")
    IN_PROGRESS = "in_progress", _("In progress")
    ENDED = "ended", _("Ended")


class ConsultationEndReason(models.TextChoices):
    ROOM_FINISHED = "room_finished", _("Everyone left the room")
    DOCTOR = "doctor", _("Ended by the doctor")
    CANCELLED = "cancelled", _("Appointment cancelled")


# A room that finished because everyone left may be joined again while its window is
# open (a dropped connection); one the doctor ended or the clinic cancelled may not.
FINAL_END_REASONS = (ConsultationEndReason.DOCTOR, ConsultationEndReason.CANCELLED)


class ConsultationParty(models.TextChoices):
    PATIENT = "patient", _("Patient")
    DOCTOR = "doctor", _("Doctor")


class Consultation(models.Model):
    appointment = models.OneToOneField(
        "scheduling.Appointment",
        on_delete=models.PROTECT,
        related_name="video_consultation",
        verbose_name=_("appointment"),
    )
    room_name = models.CharField(
        _("room name"), max_length=80, unique=True, editable=False, default=new_room_name
    )
    state = models.CharField(
        _("state"),
        max_length=16,
        choices=ConsultationState.choices,
        default=ConsultationState.SCHEDULED,
        db_index=True,
    )
    # First arrival of each side (asked for a token), and whether each is connected to
    # the media room now (LiveKit's participant_joined / participant_left).
    patient_joined_at = models.DateTimeField(_("patient joined"), null=True, blank=True)
    doctor_joined_at = models.DateTimeField(_("doctor joined"), null=True, blank=True)
    patient_connected = models.BooleanField(_("patient connected"), default=False)
    doctor_connected = models.BooleanField(_("doctor connected"), default=False)
    room_sid = models.CharField(_("LiveKit room id"), max_length=64, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    end_reason = models.CharField(
        _("end reason"), max_length=16, choices=ConsultationEndReason.choices, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(state=ConsultationState.ENDED) | Q(ended_at__isnull=False),
                name="consultation_ended_has_time",
            ),
        ]
        verbose_name = _("video consultation")
        verbose_name_plural = _("video consultations")

    def __str__(self) -> str:
        return f"{_('Video consultation')} #{self.pk} {self.get_state_display()}"

    @property
    def is_final(self) -> bool:
        return self.state == ConsultationState.ENDED and self.end_reason in FINAL_END_REASONS


class RecordingConsent(models.Model):
    """One party's decision about recording this consultation. Nothing is recorded
    unless both the patient and the doctor have a consent in force (given, not
    withdrawn); see `telemedicine.selectors_video.recording_allowed`."""

    consultation = models.ForeignKey(
        Consultation, on_delete=models.CASCADE, related_name="recording_consents"
    )
    party = models.CharField(_("party"), max_length=16, choices=ConsultationParty.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("who")
    )
    given_at = models.DateTimeField(_("given"), default=timezone.now)
    withdrawn_at = models.DateTimeField(_("withdrawn"), null=True, blank=True)

    class Meta:
        ordering = ["consultation", "party"]
        constraints = [
            models.UniqueConstraint(
                fields=["consultation", "party"], name="recording_consent_one_per_party"
            ),
        ]
        verbose_name = _("recording consent")
        verbose_name_plural = _("recording consents")

    def __str__(self) -> str:
        return f"{self.get_party_display()} {self.given_at:%Y-%m-%d %H:%M}"

    @property
    def in_force(self) -> bool:
        return self.withdrawn_at is None


class LiveKitWebhookEvent(models.Model):
    """Each webhook LiveKit delivered and we verified, by its event id (unique: a
    redelivery changes nothing). Holds no names: LiveKit's participant name is the
    display name, so only the identity (our user id) is kept."""

    event_id = models.CharField(_("event id"), max_length=100, unique=True)
    event = models.CharField(_("event"), max_length=40)
    room_name = models.CharField(_("room name"), max_length=80, blank=True)
    participant_identity = models.CharField(_("participant"), max_length=64, blank=True)
    consultation = models.ForeignKey(
        Consultation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_events",
    )
    occurred_at = models.DateTimeField(_("occurred"), null=True, blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    applied = models.BooleanField(_("changed the consultation"), default=False)

    class Meta:
        ordering = ["-received_at"]
        verbose_name = _("LiveKit webhook event")
        verbose_name_plural = _("LiveKit webhook events")

    def __str__(self) -> str:
        return f"{self.event} {self.event_id}"
