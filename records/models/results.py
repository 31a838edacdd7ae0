"""Visits and lab results: what a patient's medical record holds from encounters and the
laboratory.

What is encrypted (DESIGN.md rule 3) and what is not:

- Encrypted: everything written about the patient — a visit's summary, its diagnoses
  (ICD-10 code and text), notes, a report's performer, conclusion and the doctor's
  review comment, every observed value (quantity, text, coded value and its display)
  and its interpretation flag.
- In clear: catalogue data that is the same for every patient — test types, LOINC codes
  and analyte names, units and reference ranges — plus statuses, times and links. These
  let the database select a patient's released results and one analyte's series without
  decrypting, so pages take a fixed number of queries; values are decrypted in Python
  (trend charts included).

Reports, visits and observations are addressed by a random `public_id` in URLs, never by
row id or anything personal.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Location, PatientProfile
from clinic.crypto import EncryptedCharField, EncryptedTextField
from records.fields import EncryptedDecimalField

ICD10_PATTERN = re.compile(r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")
LOINC_PATTERN = re.compile(r"^[0-9]{1,7}-[0-9]$")


def _localised(ru: str, en: str) -> str:
    from django.utils.translation import get_language

    return ru if (get_language() or "ru").startswith("ru") else (en or ru)


# --- Visits ----------------------------------------------------------------------------


class Visit(models.Model):
    """One encounter with a doctor. The patient sees it (summary, diagnoses and
    patient-visible notes) once the doctor has released it; internal notes never."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    patient = models.ForeignKey(
        PatientProfile, on_delete=models.PROTECT, related_name="visits", verbose_name=_("patient")
    )
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="visits_as_doctor",
        verbose_name=_("doctor"),
    )
    appointment = models.ForeignKey(
        "scheduling.Appointment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="visits",
        verbose_name=_("appointment"),
    )
    location = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="visits",
        verbose_name=_("location"),
    )
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    # What the patient reads about the visit: findings, advice, next steps.
    summary = EncryptedTextField(_("summary for the patient"), blank=True)
    released_at = models.DateTimeField(_("released to the patient"), null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("released by"),
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["patient", "-started_at"], name="visit_patient_started"),
            models.Index(fields=["doctor", "-started_at"], name="visit_doctor_started"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=models.F("started_at")),
                name="visit_ends_after_start",
            ),
        ]
        verbose_name = _("visit")
        verbose_name_plural = _("visits")

    def __str__(self) -> str:
        return f"{_('Visit')} #{self.pk}"

    @property
    def released(self) -> bool:
        return self.released_at is not None


class DiagnosisKind(models.TextChoices):
    PRIMARY = "primary", _("Main diagnosis")
    SECONDARY = "secondary", _("Concomitant diagnosis")
    COMPLICATION = "complication", _("Complication")


class VisitDiagnosis(models.Model):
    """An ICD-10 diagnosis made at a visit. The code itself says what the patient has,
    so it is encrypted like the text."""

    visit = models.ForeignKey(
        Visit, on_delete=models.CASCADE, related_name="diagnoses", verbose_name=_("visit")
    )
    code = EncryptedCharField(_("ICD-10 code"), max_length=10)
    text = EncryptedCharField(_("diagnosis"), max_length=300)
    kind = models.CharField(
        _("kind"), max_length=16, choices=DiagnosisKind.choices, default=DiagnosisKind.PRIMARY
    )
    sort_order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["visit", "sort_order", "id"]
        verbose_name = _("diagnosis")
        verbose_name_plural = _("diagnoses")

    def __str__(self) -> str:
        return f"{_('Diagnosis')} #{self.pk}"

    def clean(self) -> None:
        if self.code and not ICD10_PATTERN.match(self.code.strip().upper()):
            raise ValidationError({"code": _("Enter an ICD-10 code such as E11.9.")})


class VisitNote(models.Model):
    """A note on a visit. `internal` notes are for the clinic only and never reach the
    patient; the others are shown to the patient once the visit is released."""

    visit = models.ForeignKey(
        Visit, on_delete=models.CASCADE, related_name="notes", verbose_name=_("visit")
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="visit_notes",
        verbose_name=_("author"),
    )
    text = EncryptedTextField(_("text"))
    internal = models.BooleanField(
        _("internal (never shown to the patient)"), default=True, db_index=True
    )
    created_at = models.DateTimeField(_("written"), default=timezone.now, editable=False)

    class Meta:
        ordering = ["visit", "created_at", "id"]
        verbose_name = _("visit note")
        verbose_name_plural = _("visit notes")

    def __str__(self) -> str:
        return f"{_('Note')} #{self.pk}"


# --- Lab results --------------------------------------------------------------------------


class ReleasePolicy(models.TextChoices):
    IMMEDIATE = "immediate", _("Released to the patient as soon as it is final")
    AFTER_REVIEW = "after_review", _("Released after a doctor reviews it with a comment")


class TestType(models.Model):
    """A laboratory test the clinic offers (a panel or a single analyte), with the rule
    for when its results reach the patient."""

    __test__ = False  # not a pytest test class, despite the name

    code = models.SlugField(_("code"), max_length=60, unique=True)
    name_ru = models.CharField(_("name (Russian)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200)
    loinc_code = models.CharField(_("LOINC code of the panel"), max_length=12, blank=True)
    release_policy = models.CharField(
        _("release to the patient"),
        max_length=16,
        choices=ReleasePolicy.choices,
        default=ReleasePolicy.AFTER_REVIEW,
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("test type")
        verbose_name_plural = _("test types")

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return _localised(self.name_ru, self.name_en)


class ReportStatus(models.TextChoices):
    PRELIMINARY = "preliminary", _("Preliminary")
    FINAL = "final", _("Final")
    AMENDED = "amended", _("Amended")
    CANCELLED = "cancelled", _("Cancelled")


# Results the release rule applies to: complete, signed by the laboratory.
RELEASABLE_STATUSES = (ReportStatus.FINAL, ReportStatus.AMENDED)


class ReviewState(models.TextChoices):
    NOT_REQUIRED = "not_required", _("No review needed")
    PENDING = "pending", _("Awaiting review")
    REVIEWED = "reviewed", _("Reviewed")


class LabReport(models.Model):
    """One laboratory report (a FHIR DiagnosticReport) and its doctor's review."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    patient = models.ForeignKey(
        PatientProfile,
        on_delete=models.PROTECT,
        related_name="lab_reports",
        verbose_name=_("patient"),
    )
    visit = models.ForeignKey(
        Visit,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="lab_reports",
        verbose_name=_("visit"),
    )
    test_type = models.ForeignKey(
        TestType, on_delete=models.PROTECT, related_name="reports", verbose_name=_("test")
    )
    ordered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="lab_reports_ordered",
        verbose_name=_("ordered by"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=ReportStatus.choices, default=ReportStatus.FINAL
    )
    # When the specimen was taken (the time a trend is plotted at); issued_at if unknown.
    collected_at = models.DateTimeField(_("specimen collected"), null=True, blank=True)
    issued_at = models.DateTimeField(_("issued"), default=timezone.now)
    performer = EncryptedCharField(_("performed by"), max_length=300, blank=True)
    conclusion = EncryptedTextField(_("laboratory conclusion"), blank=True)
    # Where it came from, so a report sent again (amended, or a repeated message) updates
    # the same row: e.g. ("mis", the DiagnosticReport id).
    source = models.CharField(_("source"), max_length=40, blank=True)
    external_id = models.CharField(_("identifier at the source"), max_length=128, blank=True)

    review_state = models.CharField(
        _("review"),
        max_length=16,
        choices=ReviewState.choices,
        default=ReviewState.NOT_REQUIRED,
    )
    review_comment = EncryptedTextField(_("doctor's comment"), blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="lab_reports_reviewed",
        verbose_name=_("reviewed by"),
    )
    reviewed_at = models.DateTimeField(_("reviewed"), null=True, blank=True)
    released_to_patient_at = models.DateTimeField(
        _("released to the patient"), null=True, blank=True
    )
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("released by"),
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        indexes = [
            models.Index(fields=["patient", "-issued_at"], name="labreport_patient_issued"),
            models.Index(
                fields=["patient", "-issued_at"],
                condition=Q(released_to_patient_at__isnull=False),
                name="labreport_patient_released",
            ),
            models.Index(
                fields=["review_state", "issued_at"],
                condition=Q(review_state="pending"),
                name="labreport_awaiting_review",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~Q(external_id=""),
                name="labreport_source_external_id",
            ),
            models.CheckConstraint(
                condition=Q(released_to_patient_at__isnull=True)
                | Q(status__in=["final", "amended", "cancelled"]),
                name="labreport_released_only_when_complete",
            ),
        ]
        verbose_name = _("lab report")
        verbose_name_plural = _("lab reports")

    def __str__(self) -> str:
        return f"{_('Lab report')} #{self.pk}"

    @property
    def released(self) -> bool:
        return self.released_to_patient_at is not None

    @property
    def awaiting_review(self) -> bool:
        return self.review_state == ReviewState.PENDING

    @property
    def effective_at(self):  # noqa: ANN201
        """When the result applies: the specimen's time, else the issue time."""
        return self.collected_at or self.issued_at


class ValueType(models.TextChoices):
    QUANTITY = "quantity", _("Number with a unit")
    TEXT = "text", _("Text")
    CODED = "coded", _("Coded value")


class Interpretation(models.TextChoices):
    """HL7 v3 ObservationInterpretation codes the portal shows."""

    NORMAL = "N", _("Normal")
    HIGH = "H", _("High")
    LOW = "L", _("Low")
    CRITICAL_HIGH = "HH", _("Critically high")
    CRITICAL_LOW = "LL", _("Critically low")
    ABNORMAL = "A", _("Abnormal")


ObservationStatus = ReportStatus


class Observation(models.Model):
    """One analyte of a report (a FHIR Observation): its value, unit, reference range
    and the laboratory's flag."""

    report = models.ForeignKey(
        LabReport,
        on_delete=models.CASCADE,
        related_name="observations",
        verbose_name=_("report"),
    )
    loinc_code = models.CharField(_("LOINC code"), max_length=12, db_index=True)
    name = models.CharField(_("analyte"), max_length=200)
    value_type = models.CharField(
        _("value type"), max_length=10, choices=ValueType.choices, default=ValueType.QUANTITY
    )
    value_quantity = EncryptedDecimalField(
        _("value"), max_digits=14, decimal_places=4, null=True, blank=True
    )
    value_text = EncryptedTextField(_("value (text)"), blank=True)
    value_code = EncryptedCharField(_("value (code)"), max_length=64, blank=True)
    value_display = EncryptedCharField(_("value (coded, in words)"), max_length=300, blank=True)
    unit = models.CharField(_("unit"), max_length=40, blank=True)
    reference_low = models.DecimalField(
        _("reference range from"), max_digits=14, decimal_places=4, null=True, blank=True
    )
    reference_high = models.DecimalField(
        _("reference range to"), max_digits=14, decimal_places=4, null=True, blank=True
    )
    reference_text = models.CharField(_("reference range (text)"), max_length=200, blank=True)
    interpretation = EncryptedCharField(
        _("interpretation"), max_length=2, choices=Interpretation.choices, blank=True
    )
    note = EncryptedTextField(_("laboratory note"), blank=True)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=ObservationStatus.choices,
        default=ObservationStatus.FINAL,
    )
    sort_order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["report", "sort_order", "id"]
        indexes = [
            models.Index(fields=["loinc_code", "report"], name="observation_loinc_report"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(reference_low__isnull=True)
                | Q(reference_high__isnull=True)
                | Q(reference_low__lte=models.F("reference_high")),
                name="observation_range_in_order",
            ),
        ]
        verbose_name = _("observation")
        verbose_name_plural = _("observations")

    def __str__(self) -> str:
        return f"{self.loinc_code} #{self.pk}"

    def clean(self) -> None:
        if not LOINC_PATTERN.match(self.loinc_code or ""):
            raise ValidationError({"loinc_code": _("Enter a LOINC code such as 4548-4.")})

    @property
    def has_numeric_value(self) -> bool:
        return self.value_quantity is not None

    @property
    def numeric_value(self) -> Decimal | None:
        return self.value_quantity
