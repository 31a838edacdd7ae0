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

from clinic.crypto import EncryptedCharField


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


class Delivery(models.Model):
    """The delivery state shared by reminders and messages: one row per channel, claimed
    by the worker that sends it (see notifications.services)."""

    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    due_at = models.DateTimeField(_("due"), db_index=True, default=timezone.now)
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
        abstract = True


class Reminder(Delivery):
    appointment = models.ForeignKey(
        "scheduling.Appointment",
        on_delete=models.CASCADE,
        related_name="reminders",
        verbose_name=_("appointment"),
    )
    # "24h", "2h": the offset before the appointment, from settings.REMINDER_OFFSETS_HOURS.
    kind = models.CharField(_("kind"), max_length=8)
    # The appointment start this reminder was planned for (a move resets the row).
    appointment_starts_at = models.DateTimeField(_("appointment start"))

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


class Event(models.TextChoices):
    """What a message is about. Texts in notifications/texts.py say only that something
    happened and where to look (DESIGN.md rule 6)."""

    BOOKING_CONFIRMED = "booking_confirmed", _("Booking confirmed")
    APPOINTMENT_MOVED = "appointment_moved", _("Appointment moved")
    APPOINTMENT_CANCELLED = "appointment_cancelled", _("Appointment cancelled by the clinic")
    WAITLIST_OFFER = "waitlist_offer", _("Waitlist offer")
    RESULTS_READY = "results_ready", _("Results ready")
    PRESCRIPTION_STATUS = "prescription_status", _("Prescription status changed")
    FOLLOW_UP = "follow_up", _("Follow-up invitation")
    PAYMENT_RECEIPT = "payment_receipt", _("Payment receipt")
    DOCUMENT_READY = "document_ready", _("Document ready")
    VISIT_SUMMARY = "visit_summary", _("Visit summary ready")
    INTAKE_FORM = "intake_form", _("Intake form to fill in")
    NEW_MESSAGE = "new_message", _("New message from the clinic")
    REFUND_ISSUED = "refund_issued", _("Refund issued")
    PAYMENT_TOO_LATE = "payment_too_late", _("Payment arrived after the hold ended")
    INVOICE_ISSUED = "invoice_issued", _("Invoice to pay")


class Message(Delivery):
    """One event's message to one user through one channel (an outbox row)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notification_messages",
        verbose_name=_("recipient"),
    )
    event = models.CharField(_("event"), max_length=32, choices=Event.choices)
    # What it is about, for the delivery panels and for dedupe (never shown in a message).
    object_type = models.CharField(_("object type"), max_length=40, blank=True)
    object_id = models.PositiveBigIntegerField(_("object id"), null=True, blank=True)
    # Idempotency: the same event about the same object is queued once per channel.
    dedupe_key = models.CharField(_("dedupe key"), max_length=120)
    # A link outside the portal the message must carry (a fiscal receipt's page).
    link = EncryptedCharField(_("link"), max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key", "channel"], name="message_one_per_key_and_channel"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "due_at"]),
            models.Index(fields=["object_type", "object_id"]),
        ]
        verbose_name = _("message")
        verbose_name_plural = _("messages")

    def __str__(self) -> str:
        return f"{_('Message')} #{self.pk} {self.event} {self.channel} {self.state}"


class LinkAction(models.TextChoices):
    CONFIRM = "confirm", _("Confirm")
    RESCHEDULE = "reschedule", _("Reschedule")
    CANCEL = "cancel", _("Cancel")


class ActionLink(models.Model):
    """A signed, expiring, single-use link in a reminder. Only a hash of the token is
    stored: a copy of the database does not hold working links."""

    token_hash = models.CharField(max_length=64, unique=True)
    appointment = models.ForeignKey(
        "scheduling.Appointment",
        on_delete=models.CASCADE,
        related_name="action_links",
        verbose_name=_("appointment"),
    )
    action = models.CharField(_("action"), max_length=16, choices=LinkAction.choices)
    # The links of one reminder; cancelling through one uses them all.
    group = models.UUIDField(_("group"), db_index=True)
    # For the appointment start it was issued for: a moved appointment needs new links.
    appointment_starts_at = models.DateTimeField(_("appointment start"))
    expires_at = models.DateTimeField(_("expires"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("action link")
        verbose_name_plural = _("action links")

    def __str__(self) -> str:
        return f"{_('Action link')} #{self.pk} {self.action}"
