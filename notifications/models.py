"""Notification preferences and reminder rows.

A reminder is a row with a state (DESIGN.md rule 1): the periodic sweep finds due rows
and enqueues a task that takes the row's id, so a lost Celery message is picked up again.
One row per (appointment, kind, channel); rescheduling resets the row for the new time.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")


class ReminderState(models.TextChoices):
    PENDING = "pending", _("Pending")
    QUEUED = "queued", _("Queued")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    RETRIED = "retried", _("Waiting to retry")
    FELL_BACK = "fell_back", _("Sent through the other channel")
    SKIPPED_LATE = "skipped_late", _("Skipped (too late)")
    REVOKED = "revoked", _("Revoked")


# States the sweep and the sender may still act on.
OPEN_STATES = (ReminderState.PENDING, ReminderState.QUEUED, ReminderState.RETRIED)


class NotificationPreference(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notification_preference",
        verbose_name=_("user"),
    )
    email_enabled = models.BooleanField(_("email"), default=True)
    sms_enabled = models.BooleanField(_("SMS"), default=False)
    # Empty: the user's interface language.
    language = models.CharField(
        _("language of messages"),
        max_length=8,
        choices=[("ru", _("Russian")), ("en", _("English"))],
        blank=True,
    )

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")

    def __str__(self) -> str:
        return f"{_('Notification preference')} #{self.pk}"


class Reminder(models.Model):
    appointment = models.ForeignKey(
        "scheduling.Appointment",
        on_delete=models.CASCADE,
        related_name="reminders",
        verbose_name=_("appointment"),
    )
    # "24h", "2h": the offset before the appointment, from settings.REMINDER_OFFSETS_HOURS.
    kind = models.CharField(_("kind"), max_length=8)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    # The appointment start this reminder was planned for (a move resets the row).
    appointment_starts_at = models.DateTimeField(_("appointment start"))
    due_at = models.DateTimeField(_("due"), db_index=True)
    state = models.CharField(
        _("state"),
        max_length=16,
        choices=ReminderState.choices,
        default=ReminderState.PENDING,
        db_index=True,
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # Short and free of personal data: an error class or a provider's status code.
    last_error = models.CharField(_("last error"), max_length=120, blank=True)
    queued_at = models.DateTimeField(_("queued"), null=True, blank=True)
    # Set (and committed) by the worker that sends, before it sends: the claim.
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    sent_channel = models.CharField(
        _("sent through"), max_length=8, choices=Channel.choices, blank=True
    )
    provider_message_id = models.CharField(_("provider message id"), max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "kind", "channel"],
                name="reminder_one_per_appointment_kind_channel",
            ),
        ]
        indexes = [models.Index(fields=["state", "due_at"])]
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")

    def __str__(self) -> str:
        return f"{_('Reminder')} #{self.pk} {self.kind} {self.channel} {self.state}"
