"""Reads of documents, uploads, PDF render jobs and verification codes, already filtered
to what the asking user may see.

The single access path to a patient's documents: every function checks
`accounts.policies.can_view_document` (or the record's), answers 404 for missing and
forbidden alike, records the denial with the patient concerned, and records each view
and each download (flagged as break-glass when that is the viewer's only way in).

A patient sees the documents released to them (a PDF of a report or a visit only while
that report or visit is released) and every file they uploaded, with its review state.
Doctors and nurses in charge of the patient see all of the patient's documents.
Reception and administrators see none. The public verification check reveals only
whether a code is valid, when it was issued and by which clinic.

Polls of a render job's state read no medical data (a state and, when ready, the
document's download address): they check access on every request but are not recorded
one by one; the job page and the download are.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from accounts import policies
from accounts import selectors as account_selectors
from accounts.models import PatientProfile, Role
from audit.models import AuditAction
from audit.services import audit_record
from records import selectors as records_selectors
from records.models import (
    RELEASABLE_STATUSES,
    Document,
    DocumentKind,
    DocumentVerification,
    LabReport,
    PdfRender,
    UploadState,
    Visit,
)
from records.verification import normalize_code

DOCUMENTS_LIMIT = 100
PDF_SOURCES_LIMIT = 20
QUEUE_LIMIT = 200
CLINICIANS = frozenset({Role.DOCTOR, Role.NURSE})

# What a patient sees of the documents that are not their own uploads.
PATIENT_VISIBLE = (
    Q(released_to_patient_at__isnull=False)
    & (~Q(kind=DocumentKind.LAB_REPORT) | Q(lab_report__released_to_patient_at__isnull=False))
    & (~Q(kind=DocumentKind.VISIT_SUMMARY) | Q(visit__released_at__isnull=False))
)


# --- Recording -----------------------------------------------------------------------------


deny = records_selectors.deny
_record = records_selectors.record_access
break_glass_reason = records_selectors.break_glass_reason


def _own_profile(user: Any) -> PatientProfile | None:
    if getattr(user, "role", None) != Role.PATIENT:
        return None
    return getattr(user, "patient_profile", None)


def _key(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


# --- Querysets ----------------------------------------------------------------------------------


def _documents() -> QuerySet[Document]:
    return Document.objects.select_related(
        "patient__user",
        "visit",
        "lab_report",
        "author__staff_profile",
        "uploaded_by",
        "reviewed_by__staff_profile",
    ).prefetch_related(
        Prefetch("renders", queryset=PdfRender.objects.order_by("-created_at", "-id"))
    )


def documents_visible_to(user: Any) -> QuerySet[Document]:
    """A patient: their released documents and their own uploads. A doctor or nurse:
    every document of the patients in their care (not those opened through break-glass).
    Anyone else: none."""
    profile = _own_profile(user)
    if profile is not None:
        return _documents().filter(patient=profile).filter(PATIENT_VISIBLE | Q(uploaded_by=user))
    if getattr(user, "role", None) in CLINICIANS:
        patients = account_selectors.patients_in_care_of(user).values("pk")
        return _documents().filter(patient__in=patients)
    return Document.objects.none()


def latest_render(document: Document) -> PdfRender | None:
    """The newest render job of a document loaded through these selectors (prefetched)."""
    renders = list(document.renders.all())
    return renders[0] if renders else None


# --- The patient's pages -----------------------------------------------------------------------


@dataclass
class MyDocuments:
    documents: list[Document]  # released to the patient (clinic documents, PDFs, files)
    uploads: list[Document]  # the patient's own uploads, with their review state
    reports: list[LabReport]  # released results a PDF can be made of
    visits: list[Visit]  # released visits a PDF summary can be made of


def my_documents(user: Any) -> MyDocuments:
    """Everything of the patient's "My documents" page, in a fixed number of queries."""
    profile = _own_profile(user)
    if profile is None:
        raise deny(user, "documents")
    visible = documents_visible_to(user).order_by("-created_at", "-id")
    uploads = list(visible.filter(kind=DocumentKind.UPLOAD, uploaded_by=user)[:DOCUMENTS_LIMIT])
    documents = list(visible.exclude(kind=DocumentKind.UPLOAD, uploaded_by=user)[:DOCUMENTS_LIMIT])
    reports = list(
        records_selectors.lab_reports_visible_to(user)
        .filter(status__in=RELEASABLE_STATUSES)
        .order_by("-issued_at", "-id")[:PDF_SOURCES_LIMIT]
    )
    visits = list(
        Visit.objects.filter(patient=profile, released_at__isnull=False).order_by(
            "-started_at", "-id"
        )[:PDF_SOURCES_LIMIT]
    )
    _record(
        user,
        profile,
        "documents",
        object_type=Document._meta.label_lower,
        ids=[d.pk for d in documents + uploads],
        reports=[r.pk for r in reports],
        visits=[v.pk for v in visits],
    )
    return MyDocuments(documents=documents, uploads=uploads, reports=reports, visits=visits)


def _document_or_404(user: Any, public_id: Any, *, audience: str, what: str) -> Document:
    key = _key(public_id)
    document = _documents().filter(public_id=key).first() if key is not None else None
    if document is None:
        raise deny(user, what, found=False, audience=audience)
    is_patient = getattr(user, "role", None) == Role.PATIENT
    allowed = is_patient == (audience == "patient") and policies.can_view_document(user, document)
    if not allowed:
        raise deny(user, what, obj=document, patient=document.patient.user, audience=audience)
    return document


def document_get_for(user: Any, public_id: Any, *, audience: str = "patient") -> Document:
    """One document. `audience="patient"`: the patient's own visible ones; `"staff"`:
    clinicians who may open the record. 404 (recorded) for missing and forbidden alike."""
    document = _document_or_404(user, public_id, audience=audience, what="document")
    _record(user, document.patient, "document", obj=document, audience=audience)
    return document


def document_file_for(
    user: Any, public_id: Any, *, audience: str = "patient"
) -> tuple[Document, bytes]:
    """A document's file, decrypted, for download; the download is recorded."""
    document = _document_or_404(user, public_id, audience=audience, what="document_file")
    if not document.has_file:
        raise deny(user, "document_file", obj=document, patient=document.patient.user, ready=False)
    with document.file.open("rb") as stored:
        data = stored.read()
    _record(
        user,
        document.patient,
        "document_file",
        action=AuditAction.DOWNLOAD,
        obj=document,
        audience=audience,
        kind=document.kind,
    )
    return document, data


def lab_report_for_pdf(user: Any, public_id: Any) -> LabReport:
    """The report a PDF is asked of: the patient's own released one, or (clinicians) any
    report of a record they may open. Recorded like opening the report."""
    audience = "patient" if getattr(user, "role", None) == Role.PATIENT else "staff"
    return records_selectors.lab_report_get_for(user, public_id, audience=audience)


def visit_for_pdf(user: Any, public_id: Any) -> Visit:
    """The visit a summary PDF is asked of: the patient's own released visit, or
    (clinicians) a visit of a record they may open."""
    if getattr(user, "role", None) != Role.PATIENT:
        return records_selectors.visit_get_for(user, public_id)
    key = _key(public_id)
    visit = (
        Visit.objects.select_related("patient__user").filter(public_id=key).first()
        if key is not None
        else None
    )
    if visit is None:
        raise deny(user, "visit", found=False, audience="patient")
    if not policies.can_view_clinical_item(
        user, visit.patient, released_to_patient=visit.released, internal=False
    ):
        raise deny(user, "visit", obj=visit, patient=visit.patient.user, audience="patient")
    _record(user, visit.patient, "visit", obj=visit, audience="patient")
    return visit


def pdf_render_get_for(user: Any, public_id: Any, *, record: bool = True) -> PdfRender:
    """A render job, for whoever may see its document. `record=False` for the page's
    polls of the job's state (access is still checked, denials still recorded)."""
    key = _key(public_id)
    job = (
        PdfRender.objects.select_related(
            "document__patient__user", "document__lab_report", "document__visit"
        )
        .filter(public_id=key)
        .first()
        if key is not None
        else None
    )
    if job is None:
        raise deny(user, "pdf_job", found=False)
    document = job.document
    if not policies.can_view_document(user, document):
        raise deny(user, "pdf_job", obj=job, patient=document.patient.user)
    if record:
        _record(user, document.patient, "pdf_job", obj=document, job=job.pk, state=job.state)
    return job


# --- Staff: a patient's documents, the upload review queue ------------------------------------


def _clinical_record(user: Any, profile_id: int, what: str) -> PatientProfile:
    profile = (
        PatientProfile.objects.select_related("user", "department").filter(pk=profile_id).first()
    )
    allowed = (
        profile is not None
        and getattr(user, "role", None) in CLINICIANS
        and policies.can_view_clinical_item(user, profile, released_to_patient=False, internal=True)
    )
    if not allowed:
        raise deny(
            user,
            what,
            obj=profile,
            patient=profile.user if profile is not None else None,
            found=profile is not None,
        )
    return profile


@dataclass
class PatientDocuments:
    profile: PatientProfile
    documents: list[Document]
    visits: list[Visit]  # the newest visits, to attach a file to
    break_glass: bool


def patient_documents(user: Any, profile_id: int) -> PatientDocuments:
    """A patient's documents, newest first, for a clinician who may open the record."""
    profile = _clinical_record(user, profile_id, "documents")
    documents = list(
        _documents().filter(patient=profile).order_by("-created_at", "-id")[:DOCUMENTS_LIMIT]
    )
    visits = list(
        Visit.objects.filter(patient=profile).order_by("-started_at", "-id")[:PDF_SOURCES_LIMIT]
    )
    reason = break_glass_reason(user, profile)
    _record(
        user,
        profile,
        "documents",
        object_type=Document._meta.label_lower,
        ids=[d.pk for d in documents],
    )
    return PatientDocuments(
        profile=profile, documents=documents, visits=visits, break_glass=bool(reason)
    )


def upload_review_queue(user: Any) -> list[Document]:
    """Patients' uploads waiting for review, of the patients in this clinician's care,
    oldest first. Recorded as a list view with the ids shown."""
    if not policies.can_use_upload_review_queue(user):
        raise deny(user, "upload_review_queue")
    patients = account_selectors.patients_in_care_of(user).values("pk")
    documents = list(
        _documents()
        .filter(
            patient__in=patients,
            kind=DocumentKind.UPLOAD,
            review_state=UploadState.PENDING,
        )
        .order_by("created_at", "id")[:QUEUE_LIMIT]
    )
    audit_record(
        actor=user,
        action=AuditAction.VIEW,
        object_type=Document._meta.label_lower,
        detail={
            "what": "upload_review_queue",
            "list": True,
            "ids": [str(d.pk) for d in documents][:200],
        },
    )
    return documents


def visit_for_upload(user: Any, public_id: Any) -> Visit:
    """The visit a clinician attaches a document to (404, recorded, for anyone else)."""
    return records_selectors.visit_get_for(user, public_id)


# --- Public verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationResult:
    """All the public page may say about a code: nothing personal, nothing of content."""

    valid: bool
    revoked: bool
    issued_at: datetime
    issuer: str


def verification_check(code: str) -> VerificationResult | None:
    """The state of a printed code (None if no such code). A found code's check is
    recorded without an actor, with the patient concerned (the audit trail, not the
    patient's page of who opened their record)."""
    normalized = normalize_code(code)
    if normalized is None:
        return None
    row = (
        DocumentVerification.objects.select_related("document__patient__user")
        .filter(code=normalized)
        .first()
    )
    if row is None:
        return None
    audit_record(
        actor=None,
        action=AuditAction.VIEW,
        obj=row,
        patient=row.document.patient.user,
        detail={"what": "public_verification", "valid": not row.revoked},
    )
    return VerificationResult(
        valid=not row.revoked, revoked=row.revoked, issued_at=row.issued_at, issuer=row.issuer
    )
