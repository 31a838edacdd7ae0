"""Documents of a patient's record: what the clinic issues (referrals, discharge
summaries, prescriptions, certificates, PDFs of visits and lab reports), what patients
and staff upload, the PDF rendering jobs that make the clinic's PDFs, and the
verification codes printed on them.

What is encrypted (DESIGN.md rule 3) and what is not:

- Encrypted: a document's title and text, a reviewer's reason for rejecting an upload,
  and the file itself (Fernet, in `EncryptedFileSystemStorage`; the name on disk is
  random, never the uploader's file name).
- In clear: the kind, states, times and links, the file's content type, size and
  SHA-256 (of the plaintext: it says nothing about the patient), and the verification
  code, which is random and carries no personal data.

Documents and render jobs are addressed by a random `public_id` in URLs, never by row id.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import PatientProfile
from clinic.crypto import EncryptedCharField, EncryptedTextField
from clinic.files import EncryptedFileSystemStorage
from records.models.results import LabReport, Visit

__all__ = [
    "ACTIVE_RENDER_STATES",
    "ISSUED_KINDS",
    "RENDERED_KINDS",
    "Document",
    "DocumentKind",
    "DocumentVerification",
    "PdfRender",
    "RenderError",
    "RenderState",
    "UploadState",
    "VerificationRevocation",
    "document_file_path",
]


class DocumentKind(models.TextChoices):
    REFERRAL = "referral", _("Referral")
    DISCHARGE_SUMMARY = "discharge_summary", _("Discharge summary")
    PRESCRIPTION = "prescription", _("Prescription")
    CERTIFICATE = "certificate", _("Medical certificate")
    VISIT_SUMMARY = "visit_summary", _("Visit summary")
    LAB_REPORT = "lab_report", _("Laboratory report")
    UPLOAD = "upload", _("Uploaded file")
    DATA_EXPORT = "data_export", _("Data export")


# Written by a clinician (a title and a text), then rendered as a PDF.
ISSUED_KINDS = (
    DocumentKind.REFERRAL,
    DocumentKind.DISCHARGE_SUMMARY,
    DocumentKind.PRESCRIPTION,
    DocumentKind.CERTIFICATE,
)
# Every kind whose file is a PDF the clinic renders (and prints a verification code on).
RENDERED_KINDS = (*ISSUED_KINDS, DocumentKind.VISIT_SUMMARY, DocumentKind.LAB_REPORT)


class UploadState(models.TextChoices):
    PENDING = "pending", _("Awaiting review")
    ACCEPTED = "accepted", _("Accepted")
    REJECTED = "rejected", _("Rejected")


def document_file_path(instance: Document, filename: str) -> str:
    # Random: an uploader's file name may carry personal data.
    return f"documents/{uuid.uuid4().hex}"


class Document(models.Model):
    """One document of a patient's record. The patient sees it once it is released to
    them (`released_to_patient_at`), and always sees what they uploaded themselves,
    with its review state. Clinicians in charge of the patient see every document."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    patient = models.ForeignKey(
        PatientProfile,
        on_delete=models.PROTECT,
        related_name="documents",
        verbose_name=_("patient"),
    )
    visit = models.ForeignKey(
        Visit,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="documents",
        verbose_name=_("visit"),
    )
    # The report a "lab report" PDF shows.
    lab_report = models.ForeignKey(
        LabReport,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="documents",
        verbose_name=_("lab report"),
    )
    kind = models.CharField(_("kind"), max_length=20, choices=DocumentKind.choices)
    title = EncryptedCharField(_("title"), max_length=200)
    # The text of a referral, discharge summary, prescription or certificate.
    body = EncryptedTextField(_("text"), blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="documents_authored",
        verbose_name=_("author"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    file = models.FileField(
        _("file"),
        upload_to=document_file_path,
        storage=EncryptedFileSystemStorage(),
        blank=True,
    )
    content_type = models.CharField(_("content type"), max_length=40, blank=True)
    size = models.PositiveIntegerField(_("size in bytes"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256 of the file"), max_length=64, blank=True)
    # When the current PDF was rendered (clinic documents only).
    rendered_at = models.DateTimeField(_("rendered"), null=True, blank=True)

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

    # Uploads: who uploaded the file, and the clinic's review of a patient's upload
    # (a clinician's upload is accepted as it arrives).
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="documents_uploaded",
        verbose_name=_("uploaded by"),
    )
    review_state = models.CharField(
        _("review"), max_length=10, choices=UploadState.choices, blank=True
    )
    review_reason = EncryptedTextField(_("reason for rejecting"), blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="documents_reviewed",
        verbose_name=_("reviewed by"),
    )
    reviewed_at = models.DateTimeField(_("reviewed"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["patient", "-created_at"], name="document_patient_created"),
            models.Index(
                fields=["created_at"],
                condition=Q(review_state="pending"),
                name="document_upload_pending",
            ),
        ]
        constraints = [
            # Uploads, and only uploads, have an uploader and a review state.
            models.CheckConstraint(
                condition=(
                    Q(kind="upload", uploaded_by__isnull=False)
                    & Q(review_state__in=["pending", "accepted", "rejected"])
                )
                | (~Q(kind="upload") & Q(review_state="")),
                name="document_upload_has_review_state",
            ),
            models.CheckConstraint(
                condition=Q(kind="lab_report", lab_report__isnull=False) | ~Q(kind="lab_report"),
                name="document_lab_report_has_report",
            ),
            models.CheckConstraint(
                condition=Q(kind="visit_summary", visit__isnull=False) | ~Q(kind="visit_summary"),
                name="document_visit_summary_has_visit",
            ),
        ]
        verbose_name = _("document")
        verbose_name_plural = _("documents")

    def __str__(self) -> str:
        return f"{_('Document')} #{self.pk}"

    @property
    def released(self) -> bool:
        return self.released_to_patient_at is not None

    @property
    def visible_to_patient(self) -> bool:
        """Released to the patient and, for the PDF of a report or a visit, what it shows
        is still released (an amended report withdrawn for review hides its old PDF)."""
        if not self.released:
            return False
        if self.kind == DocumentKind.LAB_REPORT:
            return self.lab_report is not None and self.lab_report.released
        if self.kind == DocumentKind.VISIT_SUMMARY:
            return self.visit is not None and self.visit.released
        return True

    @property
    def is_upload(self) -> bool:
        return self.kind == DocumentKind.UPLOAD

    @property
    def is_rendered_kind(self) -> bool:
        return self.kind in RENDERED_KINDS

    @property
    def has_file(self) -> bool:
        return bool(self.file)


class RenderState(models.TextChoices):
    QUEUED = "queued", _("Waiting to be prepared")
    RENDERING = "rendering", _("Being prepared")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Could not be prepared")


ACTIVE_RENDER_STATES = (RenderState.QUEUED, RenderState.RENDERING)


class RenderError(models.TextChoices):
    RENDER_FAILED = "render_failed", _("The PDF could not be made")
    SOURCE_GONE = "source_gone", _("What the PDF shows is no longer available")
    GAVE_UP = "gave_up", _("Too many attempts")


class PdfRender(models.Model):
    """One job that renders a document's PDF in a worker (DESIGN.md rule 1: the row is
    the record of work to do; the Celery message only a nudge, and a sweep re-queues
    jobs whose message was lost). The page polls its state."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    document = models.ForeignKey(
        Document, on_delete=models.CASCADE, related_name="renders", verbose_name=_("document")
    )
    state = models.CharField(
        _("state"), max_length=10, choices=RenderState.choices, default=RenderState.QUEUED
    )
    error_code = models.CharField(
        _("error"), max_length=20, choices=RenderError.choices, blank=True
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # The language the PDF is written in (the patient's).
    language = models.CharField(_("language"), max_length=8, default="ru")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("requested"), default=timezone.now, editable=False)
    # Last time the job was (re)queued: the sweep re-sends messages older than a minute.
    queued_at = models.DateTimeField(_("queued"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["state", "queued_at"],
                condition=Q(state__in=["queued", "rendering"]),
                name="pdfrender_active",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["document"],
                condition=Q(state__in=["queued", "rendering"]),
                name="pdfrender_one_active_per_document",
            ),
            models.CheckConstraint(
                condition=Q(state="failed") | Q(error_code=""),
                name="pdfrender_error_only_when_failed",
            ),
        ]
        verbose_name = _("PDF render job")
        verbose_name_plural = _("PDF render jobs")

    def __str__(self) -> str:
        return f"{_('PDF render job')} #{self.pk}"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_RENDER_STATES

    @property
    def ready(self) -> bool:
        return self.state == RenderState.READY


class VerificationRevocation(models.TextChoices):
    SUPERSEDED = "superseded", _("Replaced by a newer version")
    WITHDRAWN = "withdrawn", _("Withdrawn by the clinic")


class DocumentVerification(models.Model):
    """The code printed on a rendered PDF, which a pharmacy or another clinic checks on
    the public page `/verify/<code>/`. That page says only whether the code is valid,
    when it was issued and by which clinic: nothing about the patient or the content.

    The code is random (12 characters of Crockford's base-32: 60 bits), stored upper
    case without separators and looked up the same way, so it is case-insensitive."""

    code = models.CharField(_("code"), max_length=16, unique=True)
    document = models.ForeignKey(
        Document,
        on_delete=models.PROTECT,
        related_name="verifications",
        verbose_name=_("document"),
    )
    issued_at = models.DateTimeField(_("issued"), default=timezone.now)
    issuer = models.CharField(_("issued by"), max_length=200)
    revoked = models.BooleanField(_("revoked"), default=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_reason = models.CharField(
        _("why revoked"), max_length=12, choices=VerificationRevocation.choices, blank=True
    )

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(code=Upper("code")), name="documentverification_code_upper"
            ),
            models.CheckConstraint(
                condition=Q(revoked=False, revoked_at__isnull=True)
                | Q(revoked=True, revoked_at__isnull=False),
                name="documentverification_revoked_has_time",
            ),
        ]
        verbose_name = _("document verification code")
        verbose_name_plural = _("document verification codes")

    def __str__(self) -> str:
        return f"{_('Verification code')} #{self.pk}"

    @property
    def display_code(self) -> str:
        """XXXX-XXXX-XXXX, as printed."""
        from records.verification import display_code

        return display_code(self.code)
