"""Outbound pushes of portal appointments to the MIS: one row per (appointment, change).

Rows, not messages (DESIGN.md rule 1): scheduling's hooks write a `PushJob` inside the
booking, move or cancel transaction; a task sends it once that commits and a beat sweep
sends again what is due or was lost. Sending makes the MIS's Appointment match the
portal's appointment as it is *now* (mis.services_push), so a job that is sent twice, or
after a later change of the same appointment, still leaves exactly one right resource
in the MIS.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["OPEN_PUSH_STATES", "PushChange", "PushJob", "PushState", "RejectedPush"]


class PushChange(models.TextChoices):
    BOOK = "book", _("Booked")
    MOVE = "move", _("Moved")
    CANCEL = "cancel", _("Cancelled")
    STATUS = "status", _("Status changed")


class PushState(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    QUEUED = "queued", _("Queued")
    DELIVERED = "delivered", _("Delivered to the MIS")
    SKIPPED = "skipped", _("Nothing to send")
    REJECTED = "rejected", _("Refused by the MIS")
    FAILED = "failed", _("Failed (needs an operator)")


# States the sweep and the sender may still act on.
OPEN_PUSH_STATES = (PushState.PENDING, PushState.QUEUED)


class PushJob(models.Model):
    """One change of one appointment that the MIS must learn about.

    `mis_system` is the MIS it goes to (`ExternalLink.system`, "fhir:<base url>"), fixed
    when the row is written. `attempts`, `next_attempt_at` and `last_error` are the retry
    state; `claimed_at` is set and committed by the worker that sends, before it sends.
    `last_error` holds an HTTP status, the OperationOutcome's issue code and its
    diagnostics (the MIS's words, shown to staff only), never the resource itself."""

    appointment = models.ForeignKey(
        "scheduling.Appointment",
        on_delete=models.CASCADE,
        related_name="mis_pushes",
        verbose_name=_("appointment"),
    )
    change = models.CharField(_("change"), max_length=8, choices=PushChange.choices)
    mis_system = models.CharField(_("MIS"), max_length=255)
    state = models.CharField(
        _("state"),
        max_length=16,
        choices=PushState.choices,
        default=PushState.PENDING,
        db_index=True,
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    queued_at = models.DateTimeField(_("queued"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=300, blank=True)
    mis_id = models.CharField(_("MIS appointment id"), max_length=255, blank=True)
    mis_version = models.CharField(_("MIS version"), max_length=64, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # Reception marks a refused push as dealt with (the patient was called).
    handled_at = models.DateTimeField(_("handled"), null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("handled by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["appointment", "state"]),
        ]
        verbose_name = _("MIS push")
        verbose_name_plural = _("MIS pushes")

    def __str__(self) -> str:
        return f"{_('MIS push')} #{self.pk} {self.change} {self.state}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_PUSH_STATES


class RejectedPushManager(models.Manager["RejectedPush"]):
    def get_queryset(self) -> models.QuerySet[RejectedPush]:
        return super().get_queryset().filter(state=PushState.REJECTED)


class RejectedPush(PushJob):
    """Reception's list in admin: bookings the MIS refused (and the portal cancelled)."""

    objects = RejectedPushManager()

    class Meta:
        proxy = True
        ordering = [models.F("handled_at").asc(nulls_first=True), "-created_at"]
        verbose_name = _("booking refused by the MIS")
        verbose_name_plural = _("bookings refused by the MIS")
