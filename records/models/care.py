"""Prescriptions and their renewals, intake forms before a visit, vaccinations and care
plans: the parts of a patient's record about ongoing care (issue 6, items 6 and 7).

What is encrypted (DESIGN.md rule 3) and what is not:

- Encrypted: everything that says what the patient has or takes — a medication's name,
  dosage and instructions; a renewal's confirmed dosage, pharmacy, notes and the reason
  for a rejection; every answer of an intake form; a vaccine's name, lot and notes; a
  care plan's condition and instructions.
- In clear: statuses, counts (repeats allowed and used, dose numbers), dates and links,
  so the database can pick a patient's open renewals, a doctor's queue or the forms due
  for a reminder without decrypting anything.

Everything a page names in a URL is addressed by a random `public_id`, never by row id.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import PatientProfile
from clinic.crypto import EncryptedCharField, EncryptedTextField

__all__ = [
    "INTAKE_FIELDS",
    "OPEN_RENEWAL_STATUSES",
    "RENEWAL_TRANSITIONS",
    "CarePlan",
    "IntakeForm",
    "IntakeStatus",
    "Prescription",
    "PrescriptionStatus",
    "RenewalEvent",
    "RenewalRequest",
    "RenewalStatus",
    "Vaccination",
]

# --- Prescriptions -----------------------------------------------------------------------


class PrescriptionStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


class Prescription(models.Model):
    """A medication a doctor prescribed. A repeat prescription (`is_repeat`) may be
    renewed `repeats_allowed` times; each approved renewal uses one repeat."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    patient = models.ForeignKey(
        PatientProfile,
        on_delete=models.PROTECT,
        related_name="prescriptions",
        verbose_name=_("patient"),
    )
    prescriber = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="prescriptions_written",
        verbose_name=_("prescribed by"),
    )
    visit = models.ForeignKey(
        "records.Visit",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="prescriptions",
        verbose_name=_("visit"),
    )
    medication = EncryptedCharField(_("medication"), max_length=300)
    dosage = EncryptedCharField(_("dosage"), max_length=300)
    instructions = EncryptedTextField(_("instructions"), blank=True)
    is_repeat = models.BooleanField(_("repeat prescription"), default=False)
    repeats_allowed = models.PositiveSmallIntegerField(_("repeats allowed"), default=0)
    repeats_used = models.PositiveSmallIntegerField(_("repeats used"), default=0)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=PrescriptionStatus.choices,
        default=PrescriptionStatus.ACTIVE,
        db_index=True,
    )
    issued_at = models.DateTimeField(_("issued"), default=timezone.now)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        indexes = [
            models.Index(fields=["patient", "-issued_at"], name="prescription_patient_issued"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(repeats_used__lte=F("repeats_allowed")),
                name="prescription_repeats_within_allowed",
            ),
            models.CheckConstraint(
                condition=Q(is_repeat=True) | Q(repeats_allowed=0),
                name="prescription_repeats_only_if_repeat",
            ),
        ]
        verbose_name = _("prescription")
        verbose_name_plural = _("prescriptions")

    def __str__(self) -> str:
        return f"{_('Prescription')} #{self.pk}"

    @property
    def repeats_left(self) -> int:
        return max(self.repeats_allowed - self.repeats_used, 0)

    @property
    def expired(self) -> bool:
        return self.valid_until is not None and self.valid_until < timezone.localdate()

    @property
    def renewable(self) -> bool:
        """May the patient ask for a renewal (an open request aside)?"""
        return (
            self.status == PrescriptionStatus.ACTIVE
            and self.is_repeat
            and self.repeats_left > 0
            and not self.expired
        )


# --- Renewal requests ---------------------------------------------------------------------


class RenewalStatus(models.TextChoices):
    SUBMITTED = "submitted", _("Submitted")
    UNDER_REVIEW = "under_review", _("Under review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    SENT_TO_PHARMACY = "sent_to_pharmacy", _("Sent to the pharmacy")
    READY = "ready", _("Ready to collect")
    COMPLETED = "completed", _("Completed")


# A request still in progress: a prescription has at most one of these at a time.
OPEN_RENEWAL_STATUSES = (
    RenewalStatus.SUBMITTED,
    RenewalStatus.UNDER_REVIEW,
    RenewalStatus.APPROVED,
    RenewalStatus.SENT_TO_PHARMACY,
    RenewalStatus.READY,
)
# Where each state may go (the state machine the services enforce).
RENEWAL_TRANSITIONS: dict[str, tuple[str, ...]] = {
    RenewalStatus.SUBMITTED: (RenewalStatus.UNDER_REVIEW,),
    RenewalStatus.UNDER_REVIEW: (RenewalStatus.APPROVED, RenewalStatus.REJECTED),
    RenewalStatus.APPROVED: (RenewalStatus.SENT_TO_PHARMACY, RenewalStatus.READY),
    RenewalStatus.SENT_TO_PHARMACY: (RenewalStatus.COMPLETED,),
    RenewalStatus.READY: (RenewalStatus.COMPLETED,),
    RenewalStatus.REJECTED: (),
    RenewalStatus.COMPLETED: (),
}


class RenewalRequest(models.Model):
    """A patient's request to renew a repeat prescription, and its way through review:
    submitted → under review → approved or rejected (with a reason) → sent to the
    pharmacy or ready to collect → completed."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    prescription = models.ForeignKey(
        Prescription,
        on_delete=models.PROTECT,
        related_name="renewals",
        verbose_name=_("prescription"),
    )
    patient = models.ForeignKey(
        PatientProfile,
        on_delete=models.PROTECT,
        related_name="renewal_requests",
        verbose_name=_("patient"),
    )
    confirmed_dosage = EncryptedCharField(_("dosage the patient takes"), max_length=300)
    pharmacy = EncryptedCharField(_("pharmacy"), max_length=300)
    notes = EncryptedTextField(_("notes for the doctor"), blank=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=RenewalStatus.choices,
        default=RenewalStatus.SUBMITTED,
        db_index=True,
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="renewals_reviewed",
        verbose_name=_("reviewed by"),
    )
    rejection_reason = EncryptedTextField(_("reason for the rejection"), blank=True)
    submitted_at = models.DateTimeField(_("submitted"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        indexes = [
            models.Index(fields=["patient", "-submitted_at"], name="renewal_patient_submitted"),
            models.Index(fields=["status", "submitted_at"], name="renewal_status_submitted"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["prescription"],
                condition=Q(status__in=[s.value for s in OPEN_RENEWAL_STATUSES]),
                name="renewal_one_open_per_prescription",
                violation_error_message=_("A renewal of this prescription is already in progress."),
            ),
        ]
        verbose_name = _("renewal request")
        verbose_name_plural = _("renewal requests")

    def __str__(self) -> str:
        return f"{_('Renewal request')} #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_RENEWAL_STATUSES

    def can_go_to(self, status: str) -> bool:
        return status in RENEWAL_TRANSITIONS.get(self.status, ())


class RenewalEvent(models.Model):
    """One step of a renewal request: who moved it from which state to which, and when.
    The patient sees these as the request's history."""

    renewal = models.ForeignKey(
        RenewalRequest, on_delete=models.CASCADE, related_name="events", verbose_name=_("request")
    )
    at = models.DateTimeField(_("when"), default=timezone.now)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("by"),
    )
    from_status = models.CharField(
        _("from"), max_length=20, choices=RenewalStatus.choices, blank=True
    )
    to_status = models.CharField(_("to"), max_length=20, choices=RenewalStatus.choices)

    class Meta:
        ordering = ["renewal", "at", "id"]
        verbose_name = _("renewal event")
        verbose_name_plural = _("renewal events")

    def __str__(self) -> str:
        return f"{self.from_status or '—'} → {self.to_status}"


# --- Intake forms ---------------------------------------------------------------------------


class IntakeStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("Submitted")


INTAKE_FIELDS = ("reason", "symptoms", "allergies", "medications", "history", "family_history")


class IntakeForm(models.Model):
    """What the patient tells the doctor before a visit. One per appointment; saved as a
    draft until the patient submits it, and shown to the appointment's doctor once
    submitted. `reminded_at` marks the one reminder sent for an unfinished form (the
    reminder sweep creates an empty draft for an appointment that has none)."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    patient = models.ForeignKey(
        PatientProfile,
        on_delete=models.PROTECT,
        related_name="intake_forms",
        verbose_name=_("patient"),
    )
    appointment = models.OneToOneField(
        "scheduling.Appointment",
        on_delete=models.PROTECT,
        related_name="intake_form",
        verbose_name=_("appointment"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=IntakeStatus.choices, default=IntakeStatus.DRAFT
    )
    reason = EncryptedTextField(_("reason for the visit"), blank=True)
    symptoms = EncryptedTextField(_("symptoms"), blank=True)
    allergies = EncryptedTextField(_("allergies"), blank=True)
    medications = EncryptedTextField(_("medications you take"), blank=True)
    history = EncryptedTextField(_("medical history"), blank=True)
    family_history = EncryptedTextField(_("family history"), blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("last saved"), auto_now=True)
    submitted_at = models.DateTimeField(_("submitted"), null=True, blank=True)
    reminded_at = models.DateTimeField(_("reminder sent"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["status"],
                condition=Q(reminded_at__isnull=True),
                name="intake_not_reminded",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="submitted") | Q(submitted_at__isnull=False),
                name="intake_submitted_has_time",
            ),
        ]
        verbose_name = _("intake form")
        verbose_name_plural = _("intake forms")

    def __str__(self) -> str:
        return f"{_('Intake form')} #{self.pk}"

    @property
    def submitted(self) -> bool:
        return self.status == IntakeStatus.SUBMITTED

    @property
    def is_empty(self) -> bool:
        return not any((getattr(self, name) or "").strip() for name in INTAKE_FIELDS)


# --- Vaccinations and care plans ------------------------------------------------------------


class Vaccination(models.Model):
    """A vaccine given to the patient (here or elsewhere, as recorded by a clinician)."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    patient = models.ForeignKey(
        PatientProfile,
        on_delete=models.PROTECT,
        related_name="vaccinations",
        verbose_name=_("patient"),
    )
    vaccine = EncryptedCharField(_("vaccine"), max_length=200)
    given_on = models.DateField(_("date given"))
    dose_number = models.PositiveSmallIntegerField(_("dose number"), default=1)
    lot = EncryptedCharField(_("lot number"), max_length=60, blank=True)
    notes = EncryptedTextField(_("notes"), blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="vaccinations_recorded",
        verbose_name=_("recorded by"),
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-given_on", "-id"]
        indexes = [
            models.Index(fields=["patient", "-given_on"], name="vaccination_patient_given"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(dose_number__gte=1), name="vaccination_dose_from_1"),
        ]
        verbose_name = _("vaccination")
        verbose_name_plural = _("vaccinations")

    def __str__(self) -> str:
        return f"{_('Vaccination')} #{self.pk}"


class CarePlan(models.Model):
    """A plan for a chronic condition: what the patient should do (instructions) and
    when the doctor reviews it. Inactive plans stay in the record as history."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    patient = models.ForeignKey(
        PatientProfile,
        on_delete=models.PROTECT,
        related_name="care_plans",
        verbose_name=_("patient"),
    )
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="care_plans",
        verbose_name=_("doctor"),
    )
    condition = EncryptedCharField(_("condition"), max_length=300)
    instructions = EncryptedTextField(_("instructions for the patient"))
    start_date = models.DateField(_("start"), default=timezone.localdate)
    review_date = models.DateField(_("next review"), null=True, blank=True)
    active = models.BooleanField(_("active"), default=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-active", "-start_date", "-id"]
        indexes = [
            models.Index(fields=["patient", "-start_date"], name="careplan_patient_start"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(review_date__isnull=True) | Q(review_date__gte=F("start_date")),
                name="careplan_review_after_start",
            ),
        ]
        verbose_name = _("care plan")
        verbose_name_plural = _("care plans")

    def __str__(self) -> str:
        return f"{_('Care plan')} #{self.pk}"
