"""The patient's data rights (issue 6, item 9): requests to export everything held about
them (a FHIR R4 Bundle as JSON, or a readable PDF) and to delete their account.

A `DataRequest` is the history the patient sees on "My data" and the record of work to
do for a PDF export (DESIGN.md rule 1: the row is the job; the Celery message only a
nudge, and a sweep re-queues a job whose message was lost). A deletion anonymises the
account and its contact data at once; the medical record stays, for the retention that
Russian law requires (`MEDICAL_RECORD_RETENTION_YEARS`), and the request says so.

What is encrypted and what is not: the PDF file is encrypted at rest (it holds the whole
record); the outcome text and the detail are written without personal or medical data
(counts, states, dates), so they are stored in clear.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import PatientProfile
from clinic.files import EncryptedFileSystemStorage

__all__ = [
    "ACTIVE_DATA_REQUEST_STATUSES",
    "EXPORT_FILE_DAYS",
    "MEDICAL_RECORD_RETENTION_YEARS",
    "DataRequest",
    "DataRequestKind",
    "DataRequestStatus",
    "data_export_file_path",
]

# How long the clinic keeps medical documentation after the last entry: the outpatient
# medical record (form 025/u) is kept for 25 years under the Ministry of Health's rules
# made under Federal Law 323-FZ (art. 22 on medical documentation). A deletion request
# cannot shorten it (152-FZ art. 5(7); GDPR art. 17(3)(b) and (c)). The one place the
# number is written; pages and the outcome text read it from here.
MEDICAL_RECORD_RETENTION_YEARS = 25

# A prepared PDF export stays downloadable this long, then its file is deleted (the
# request stays in the history); the patient can prepare a new one at any time.
EXPORT_FILE_DAYS = 7


class DataRequestKind(models.TextChoices):
    EXPORT_JSON = "export_json", _("Download of your data (FHIR, JSON)")
    EXPORT_PDF = "export_pdf", _("Download of your data (PDF)")
    DELETION = "deletion", _("Deletion of your account")


class DataRequestStatus(models.TextChoices):
    QUEUED = "queued", _("Waiting to be prepared")
    PROCESSING = "processing", _("Being prepared")
    COMPLETED = "completed", _("Done")
    FAILED = "failed", _("Could not be completed")


ACTIVE_DATA_REQUEST_STATUSES = (DataRequestStatus.QUEUED, DataRequestStatus.PROCESSING)


def data_export_file_path(instance: DataRequest, filename: str) -> str:
    # Random: nothing about the patient in a file name.
    return f"exports/{uuid.uuid4().hex}"


class DataRequest(models.Model):
    """One request of a patient about their own data, and what came of it."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    patient = models.ForeignKey(
        PatientProfile,
        on_delete=models.PROTECT,
        related_name="data_requests",
        verbose_name=_("patient"),
    )
    # Who asked: the patient (accounts has no representatives acting for a patient yet).
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("requested by"),
    )
    kind = models.CharField(_("request"), max_length=16, choices=DataRequestKind.choices)
    status = models.CharField(
        _("status"),
        max_length=12,
        choices=DataRequestStatus.choices,
        default=DataRequestStatus.QUEUED,
    )
    requested_at = models.DateTimeField(_("requested"), default=timezone.now)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    # What the patient reads about the result, in their language at the time. Never
    # personal or medical data: what was done, what was kept and why.
    outcome = models.TextField(_("outcome"), blank=True)
    # Structured facts of the outcome (counts, states): no personal data.
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    # A PDF export: the job's state (as records.PdfRender) and the file, encrypted.
    language = models.CharField(_("language"), max_length=8, default="ru")
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    queued_at = models.DateTimeField(_("queued"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    file = models.FileField(
        _("file"),
        upload_to=data_export_file_path,
        storage=EncryptedFileSystemStorage(),
        blank=True,
    )
    size = models.PositiveIntegerField(_("size in bytes"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256 of the file"), max_length=64, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(fields=["patient", "-requested_at"], name="datarequest_patient_req"),
            models.Index(
                fields=["status", "queued_at"],
                condition=Q(status__in=["queued", "processing"]),
                name="datarequest_active",
            ),
        ]
        constraints = [
            # One PDF export in preparation at a time; asking again finds it.
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(kind="export_pdf", status__in=["queued", "processing"]),
                name="datarequest_one_active_pdf_export",
            ),
            # An account is deleted once.
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(kind="deletion", status="completed"),
                name="datarequest_one_deletion",
            ),
            models.CheckConstraint(
                condition=Q(status="completed", completed_at__isnull=False)
                | (~Q(status="completed") & Q(completed_at__isnull=True))
                | Q(status="failed"),
                name="datarequest_completed_has_time",
            ),
        ]
        verbose_name = _("data request")
        verbose_name_plural = _("data requests")

    def __str__(self) -> str:
        return f"{_('Data request')} #{self.pk}"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_DATA_REQUEST_STATUSES

    @property
    def completed(self) -> bool:
        return self.status == DataRequestStatus.COMPLETED

    @property
    def is_pdf_export(self) -> bool:
        return self.kind == DataRequestKind.EXPORT_PDF

    @property
    def file_expires_at(self):  # noqa: ANN201
        if self.completed_at is None:
            return None
        return self.completed_at + timedelta(days=EXPORT_FILE_DAYS)

    @property
    def file_available(self) -> bool:
        return self.is_pdf_export and self.completed and bool(self.file)
