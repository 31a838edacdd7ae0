"""Secure messaging between a patient and the care team.

A `Thread` is one conversation a patient starts about a topic (an appointment, a
prescription, results, billing, anything else), optionally about one of their own
records (an appointment, a prescription, a lab report, an invoice), named by its kind
and public id (`about_kind`, `about_id`). It is routed when
it is created (telemedicine.services_messaging) to a team: reception, or the patient's
doctors and nurses; `doctor` is the clinician named by the record it is about (the
appointment's doctor, the prescriber, the doctor who ordered or reviewed a report), who
sees it whatever the team. A staff member may take it (`assigned_to`).

States (`ThreadState`, moves in `TRANSITIONS`): open (new or reopened, not answered
yet), waiting for the clinic (the patient wrote last), waiting for the patient (the
clinic wrote last), closed. Every message is seen by the patient: there are no internal
notes here.

What is encrypted (DESIGN.md rule 3): the subject, each message's text, the label of the
record a thread is about, and attached files (Fernet, in `EncryptedFileSystemStorage`
under a random name). In clear: topics, states, times, links and a file's type, size and
SHA-256. Threads and attachments are named by random public ids in URLs.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import PatientProfile
from clinic.crypto import EncryptedCharField, EncryptedTextField
from clinic.files import EncryptedFileSystemStorage

__all__ = [
    "TRANSITIONS",
    "AboutKind",
    "MessageAttachment",
    "Team",
    "Thread",
    "ThreadMessage",
    "ThreadRead",
    "ThreadState",
    "Topic",
    "attachment_file_path",
]


class Topic(models.TextChoices):
    APPOINTMENT = "appointment", _("An appointment")
    PRESCRIPTION = "prescription", _("A prescription")
    RESULTS = "results", _("Test results")
    BILLING = "billing", _("Billing and payments")
    OTHER = "other", _("Something else")


class AboutKind(models.TextChoices):
    """The kinds of record a thread may be about (each the patient's own)."""

    APPOINTMENT = "appointment", _("Appointment")
    PRESCRIPTION = "prescription", _("Prescription")
    LAB_REPORT = "lab_report", _("Test result")
    INVOICE = "invoice", _("Invoice")


class Team(models.TextChoices):
    RECEPTION = "reception", _("Reception")
    CARE = "care", _("Doctors and nurses")


class ThreadState(models.TextChoices):
    OPEN = "open", _("Open")
    WAITING_CLINIC = "waiting_clinic", _("Waiting for the clinic")
    WAITING_PATIENT = "waiting_patient", _("Waiting for the patient")
    CLOSED = "closed", _("Closed")


# Which state a thread may be moved to by hand (a message moves it by itself: see
# services_messaging.message_send). Reopening a closed thread makes it open again.
TRANSITIONS: dict[str, frozenset[str]] = {
    ThreadState.OPEN: frozenset(
        {ThreadState.WAITING_CLINIC, ThreadState.WAITING_PATIENT, ThreadState.CLOSED}
    ),
    ThreadState.WAITING_CLINIC: frozenset({ThreadState.WAITING_PATIENT, ThreadState.CLOSED}),
    ThreadState.WAITING_PATIENT: frozenset({ThreadState.WAITING_CLINIC, ThreadState.CLOSED}),
    ThreadState.CLOSED: frozenset({ThreadState.OPEN}),
}


class Thread(models.Model):
    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    patient = models.ForeignKey(
        PatientProfile,
        on_delete=models.PROTECT,
        related_name="message_threads",
        verbose_name=_("patient"),
    )
    topic = models.CharField(_("topic"), max_length=16, choices=Topic.choices)
    subject = EncryptedCharField(_("subject"), max_length=150)
    # The record the thread is about: one of the patient's own, by kind and public id.
    about_kind = models.CharField(_("about"), max_length=16, choices=AboutKind.choices, blank=True)
    about_id = models.UUIDField(_("about (public id)"), null=True, blank=True)
    # What the patient chose, as they saw it ("Lisinopril 10 mg", "Appointment on ...").
    about_label = EncryptedCharField(_("about (label)"), max_length=300, blank=True)

    team = models.CharField(_("routed to"), max_length=16, choices=Team.choices)
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="message_threads_routed",
        verbose_name=_("doctor concerned"),
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="message_threads_assigned",
        verbose_name=_("taken by"),
    )
    state = models.CharField(
        _("state"), max_length=16, choices=ThreadState.choices, default=ThreadState.OPEN
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("started by"),
    )
    created_at = models.DateTimeField(_("started"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    last_message_at = models.DateTimeField(_("last message"), default=timezone.now)
    # For unread markers: the newest message from each side.
    last_patient_message_at = models.DateTimeField(null=True, blank=True)
    last_clinic_message_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("closed by"),
    )

    class Meta:
        ordering = ["-last_message_at", "-id"]
        verbose_name = _("message thread")
        verbose_name_plural = _("message threads")
        indexes = [
            models.Index(fields=["patient", "-last_message_at"], name="thread_patient_recent"),
            models.Index(fields=["team", "state", "-last_message_at"], name="thread_team_queue"),
            models.Index(fields=["doctor", "state"], name="thread_doctor_state"),
            models.Index(fields=["assigned_to", "state"], name="thread_assignee_state"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(topic__in=Topic.values), name="thread_topic_valid"),
            models.CheckConstraint(condition=Q(team__in=Team.values), name="thread_team_valid"),
            models.CheckConstraint(
                condition=Q(state__in=ThreadState.values), name="thread_state_valid"
            ),
            # A link names both its kind and its record, or neither.
            models.CheckConstraint(
                condition=(Q(about_kind="") & Q(about_id__isnull=True))
                | (Q(about_kind__in=AboutKind.values) & Q(about_id__isnull=False)),
                name="thread_about_complete",
            ),
            # Closed exactly when it has a closing time.
            models.CheckConstraint(
                condition=(Q(state="closed") & Q(closed_at__isnull=False))
                | (~Q(state="closed") & Q(closed_at__isnull=True)),
                name="thread_closed_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{_('Thread')} #{self.pk} ({self.get_topic_display()}, {self.get_state_display()})"

    @property
    def closed(self) -> bool:
        return self.state == ThreadState.CLOSED

    @property
    def clinic_turn(self) -> bool:
        """The clinic owes an answer (new, reopened, or the patient wrote last)."""
        return self.state in (ThreadState.OPEN, ThreadState.WAITING_CLINIC)

    def can_move_to(self, state: str) -> bool:
        return state in TRANSITIONS.get(self.state, frozenset())


class ThreadMessage(models.Model):
    """One message: from the patient (`from_patient`) or from a member of staff."""

    thread = models.ForeignKey(
        Thread, on_delete=models.PROTECT, related_name="messages", verbose_name=_("thread")
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("author"),
    )
    from_patient = models.BooleanField(_("from the patient"))
    body = EncryptedTextField(_("text"))
    created_at = models.DateTimeField(_("sent"), default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        indexes = [
            models.Index(fields=["thread", "id"], name="message_thread_order"),
            # Rate limits count a user's recent messages.
            models.Index(fields=["author", "created_at"], name="message_author_recent"),
        ]

    def __str__(self) -> str:
        return f"{_('Message')} #{self.pk}"


def attachment_file_path(instance: MessageAttachment, filename: str) -> str:
    # Random: an uploader's file name may carry personal data.
    return f"messages/{uuid.uuid4().hex}"


class MessageAttachment(models.Model):
    """A file sent with a message: a PDF, JPEG or PNG checked by content like a record's
    upload (clinic.files.validate_upload, strict) and stored encrypted."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    message = models.ForeignKey(
        ThreadMessage,
        on_delete=models.PROTECT,
        related_name="attachments",
        verbose_name=_("message"),
    )
    file = models.FileField(
        _("file"),
        upload_to=attachment_file_path,
        storage=EncryptedFileSystemStorage(),
    )
    content_type = models.CharField(_("content type"), max_length=40)
    size = models.PositiveIntegerField(_("size in bytes"))
    sha256 = models.CharField(_("SHA-256 of the file"), max_length=64)
    created_at = models.DateTimeField(_("uploaded"), default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return f"{_('Attachment')} #{self.pk}"


class ThreadRead(models.Model):
    """How far a user has read a thread: messages from the other side sent after
    `read_at` are unread for them."""

    thread = models.ForeignKey(
        Thread, on_delete=models.CASCADE, related_name="reads", verbose_name=_("thread")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("reader"),
    )
    read_at = models.DateTimeField(_("read up to"))

    class Meta:
        verbose_name = _("read marker")
        verbose_name_plural = _("read markers")
        constraints = [
            models.UniqueConstraint(fields=["thread", "user"], name="thread_read_once_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.thread_id}/{self.user_id}"
