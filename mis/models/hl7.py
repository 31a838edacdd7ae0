"""HL7 v2 inbound messages and their outcome.

One row per message received (over MLLP or from a file). A message is identified by its
sender and control id (MSH-3, MSH-4, MSH-10): the first row with that key is the
*primary* one and holds the outcome; the same message sent again gets a `duplicate` row
pointing at it (no copy of the text) and the same ACK, and changes nothing. A different
message reusing a control id is rejected on its own row, also pointing at the primary.

The raw text holds personal and medical data: encrypted. The reason is written by the
portal (never a value from the message), so it stays in clear for filtering.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clinic.crypto import EncryptedTextField

__all__ = ["AckCode", "Hl7Message", "Hl7Reason", "Hl7Source", "Hl7State"]


class Hl7State(models.TextChoices):
    RECEIVED = "received", _("Received")
    APPLIED = "applied", _("Applied")
    REJECTED = "rejected", _("Rejected")
    DUPLICATE = "duplicate", _("Duplicate (sent again)")


class Hl7Source(models.TextChoices):
    MLLP = "mllp", _("MLLP connection")
    FILE = "file", _("File")


class AckCode(models.TextChoices):
    ACCEPT = "AA", _("AA: accepted")
    ERROR = "AE", _("AE: error, may be sent again")
    REJECT = "AR", _("AR: rejected, do not send again unchanged")


class Hl7Reason(models.TextChoices):
    """Why a message was rejected (or what was skipped in an applied one)."""

    NONE = "", _("—")
    PARSE_ERROR = "parse_error", _("Not a readable HL7 v2 message")
    TOO_LARGE = "too_large", _("Message too large")
    UNSUPPORTED = "unsupported", _("Message type not handled")
    CONTROL_ID_REUSED = "control_id_reused", _("Control id reused by another message")
    UNKNOWN_PATIENT = "unknown_patient", _("No matching patient")
    PATIENT_REVIEW = "patient_review", _("Patient sent to the review queue")
    UNKNOWN_DOCTOR = "unknown_doctor", _("No linked doctor")
    UNKNOWN_APPOINTMENT = "unknown_appointment", _("No linked appointment")
    SLOT_UNAVAILABLE = "slot_unavailable", _("Time not free in the portal")
    INVALID_DATA = "invalid_data", _("Invalid or unusable content")
    PARTLY_APPLIED = "partly_applied", _("Applied, some fields skipped")
    PROCESSING_ERROR = "processing_error", _("Processing error")


class Hl7Message(models.Model):
    control_id = models.CharField(_("control id (MSH-10)"), max_length=199, blank=True)
    sending_application = models.CharField(_("sending application"), max_length=227, blank=True)
    sending_facility = models.CharField(_("sending facility"), max_length=227, blank=True)
    message_type = models.CharField(_("message type"), max_length=3, blank=True)
    trigger_event = models.CharField(_("trigger event"), max_length=3, blank=True)
    version = models.CharField(_("HL7 version"), max_length=16, blank=True)
    # The message as received (normalised: no BOM, segments ended by \r). Empty on
    # duplicate rows: their text is the primary row's.
    raw = EncryptedTextField(_("message text"), blank=True)
    # Keyed hash of the text (MSH-7 left out) that tells a resend from a different message.
    content_hash = models.CharField(_("content hash"), max_length=64, blank=True, editable=False)
    size_bytes = models.PositiveIntegerField(_("size (bytes)"), default=0)

    state = models.CharField(
        _("state"), max_length=16, choices=Hl7State.choices, default=Hl7State.RECEIVED
    )
    reason_code = models.CharField(
        _("reason"), max_length=24, choices=Hl7Reason.choices, blank=True, default=""
    )
    reason = models.TextField(_("reason (details)"), blank=True)
    ack_code = models.CharField(_("ACK code"), max_length=2, choices=AckCode.choices, blank=True)
    ack_text = models.TextField(_("ACK sent"), blank=True)

    source = models.CharField(_("received through"), max_length=8, choices=Hl7Source.choices)
    peer = models.CharField(_("peer address"), max_length=100, blank=True)
    filename = models.CharField(_("file"), max_length=500, blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("processing attempts"), default=0)

    # What applying it produced or changed: a kind from mis.models.LinkedKind and the
    # portal row's id (the first one; all of them in produced_ids).
    produced_kind = models.CharField(_("produced"), max_length=16, blank=True)
    produced_id = models.BigIntegerField(_("produced id"), null=True, blank=True)
    produced_ids = models.JSONField(_("all produced ids"), default=list, blank=True)
    patient = models.ForeignKey(
        "accounts.PatientProfile",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("patient"),
    )
    duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="repeats",
        verbose_name=_("first received as"),
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sending_application", "sending_facility", "control_id"],
                condition=Q(duplicate_of__isnull=True) & ~Q(control_id=""),
                name="hl7_message_one_primary_per_control_id",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "-received_at"], name="hl7_state_received"),
            models.Index(fields=["message_type", "trigger_event"], name="hl7_type_trigger"),
        ]
        verbose_name = _("HL7 v2 message")
        verbose_name_plural = _("HL7 v2 messages")

    def __str__(self) -> str:
        kind = f"{self.message_type}^{self.trigger_event}" if self.message_type else "?"
        return f"{kind} {self.control_id or '—'} ({self.get_state_display()})"

    @property
    def type_label(self) -> str:
        return f"{self.message_type}^{self.trigger_event}" if self.message_type else ""
