"""Every write to documents, uploads, PDF render jobs and verification codes.

Each service takes the acting user first (`by=`; None for the system: the render
worker, imports, demo data), checks `accounts.policies`, works in one transaction and
records its audit event last.

- Uploads (`document_upload`) are checked by content before anything is written
  (clinic.files.validate_upload, strict): a rejected file leaves no row and no file. A
  patient's upload waits for a clinician's review (`document_upload_review`); a
  clinician's is accepted as it arrives.
- Clinic PDFs are rows first (DESIGN.md rule 1): `pdf_render_request` and
  `document_issue` write a `PdfRender` job and nudge a worker on commit;
  `pdf_render_run` (the task's body) is idempotent; `pdf_render_sweep` re-queues jobs
  whose message was lost or whose worker died.
- A document reaching its patient (a PDF ready for a released document, or a release)
  fires `hooks.document_ready` on commit, with ids only.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import policies
from accounts.models import BreakGlassAccess, PatientProfile, Role, User
from audit.models import AuditAction
from audit.services import audit_record
from clinic.files import MAX_UPLOAD_BYTES, validate_upload
from records import hooks, verification
from records.models import (
    ACTIVE_RENDER_STATES,
    ISSUED_KINDS,
    RELEASABLE_STATUSES,
    Document,
    DocumentKind,
    DocumentVerification,
    LabReport,
    PdfRender,
    RenderError,
    RenderState,
    UploadState,
    VerificationRevocation,
    Visit,
)

logger = logging.getLogger(__name__)

# Uploads: the portal-wide limit (clinic.files), checked again by the upload handler
# before the body is stored (records.uploads).
UPLOAD_MAX_BYTES = MAX_UPLOAD_BYTES
TITLE_MAX_LENGTH = 200
BODY_MAX_LENGTH = 20_000
REASON_MAX_LENGTH = 1_000
# Render jobs: a queued job whose message may be lost is sent again after a minute; a
# job "rendering" for five minutes lost its worker (the task's time limit is 300 s).
REQUEUE_AFTER = timedelta(minutes=1)
RENDER_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 3


# --- Helpers ---------------------------------------------------------------------------------


def _break_glass_reason(user: Any, profile: PatientProfile) -> str:
    """The reason of the doctor's open break-glass access, when that is their only way in."""
    if user is None or profile.user_id == user.pk or policies.has_care_relationship(user, profile):
        return ""
    access = (
        BreakGlassAccess.objects.filter(
            doctor_id=user.pk, patient=profile, expires_at__gt=timezone.now()
        )
        .order_by("-opened_at")
        .first()
    )
    return access.reason if access is not None else ""


def _enqueue(job_id: int) -> None:
    """Nudge a worker once the job's row is committed (the row is the record of work)."""
    from records import tasks

    transaction.on_commit(lambda: _send(tasks.render_pdf, job_id))


def _send(task: Any, job_id: int) -> None:
    try:
        task.delay(job_id)
    except Exception:  # noqa: BLE001 - broker down: the sweep sends it again
        logger.warning("PDF render job %s not queued; the sweep will retry", job_id)


def _language(profile: PatientProfile) -> str:
    language = getattr(profile.user, "language", "") or settings.LANGUAGE_CODE
    return language if language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def _title_of_upload(upload: Any, title: str) -> str:
    title = (title or "").strip()
    if not title:
        # The file's own name, without any folder part (kept encrypted like the title).
        title = PurePath(str(getattr(upload, "name", "") or "")).name
    return title[:TITLE_MAX_LENGTH] or str(_("Uploaded file"))


def _store(document: Document, data: bytes, *, content_type: str) -> None:
    document.file.save("document", ContentFile(data), save=False)
    document.content_type = content_type
    document.size = len(data)
    document.sha256 = hashlib.sha256(data).hexdigest()


def _fire_ready(document: Document) -> None:
    hooks.document_ready.fire_on_commit(
        document_id=document.pk, patient_user_id=document.patient.user_id
    )


# --- Uploads ---------------------------------------------------------------------------------


def document_upload(
    *,
    by: User,
    patient: PatientProfile,
    upload: Any,
    title: str = "",
    visit: Visit | None = None,
    release: bool = False,
) -> Document:
    """A file added to a patient's record: by the patient (waits for review), or by a
    clinician, to one of the patient's visits (accepted; shown to the patient if
    `release`). The file is recognised by its content and stored encrypted. A file that
    fails the checks raises ValidationError({"file": reason}) and changes nothing."""
    if not policies.can_upload_document(by, patient):
        raise PermissionDenied
    is_patient = by.role == Role.PATIENT
    if visit is not None and visit.patient_id != patient.pk:
        raise ValidationError({"visit": _("This visit belongs to another patient.")})
    if is_patient and (visit is not None or release):
        raise PermissionDenied
    if upload is None:
        raise ValidationError({"file": _("Choose a file to upload.")})
    try:
        content_type = validate_upload(upload, max_bytes=UPLOAD_MAX_BYTES, strict=True)
    except ValidationError as exc:
        raise ValidationError({"file": exc}) from exc
    title = _title_of_upload(upload, title)
    upload.seek(0)
    data = upload.read()
    now = timezone.now()
    reason = "" if is_patient else _break_glass_reason(by, patient)
    document = Document(
        patient=patient,
        visit=visit,
        kind=DocumentKind.UPLOAD,
        title=title,
        uploaded_by=by,
        author=None if is_patient else by,
        review_state=UploadState.PENDING if is_patient else UploadState.ACCEPTED,
        reviewed_by=None if is_patient else by,
        reviewed_at=None if is_patient else now,
        released_to_patient_at=now if release else None,
        released_by=by if release else None,
    )
    _store(document, data, content_type=content_type)
    try:
        with transaction.atomic():
            document.save()
            if release:
                _fire_ready(document)
            audit_record(
                actor=by,
                action=AuditAction.CREATE,
                obj=document,
                patient=patient.user,
                detail={
                    "what": "document_upload",
                    "content_type": content_type,
                    "size": len(data),
                    "visit": visit.pk if visit else None,
                    "released": release,
                },
                break_glass=bool(reason),
                reason=reason,
            )
    except Exception:
        document.file.storage.delete(document.file.name)
        raise
    return document


def document_upload_review(
    *, by: User, document: Document, accept: bool, reason: str = ""
) -> Document:
    """A clinician accepts a patient's upload into the record, or rejects it with a
    reason the patient reads."""
    if not policies.can_review_document_upload(by, document):
        raise PermissionDenied
    reason = (reason or "").strip()
    if not accept and not reason:
        raise ValidationError({"reason": _("Say why the file is rejected: the patient reads it.")})
    if len(reason) > REASON_MAX_LENGTH:
        raise ValidationError({"reason": _("The reason is too long (at most 1000 characters).")})
    with transaction.atomic():
        document = (
            Document.objects.select_for_update(of=("self",))
            .select_related("patient__user")
            .get(pk=document.pk)
        )
        if not document.is_upload or document.uploaded_by_id != document.patient.user_id:
            raise ValidationError(_("Only a patient's uploads are reviewed."))
        if document.review_state != UploadState.PENDING:
            raise ValidationError(_("This file has already been reviewed."))
        document.review_state = UploadState.ACCEPTED if accept else UploadState.REJECTED
        document.review_reason = "" if accept else reason
        document.reviewed_by = by
        document.reviewed_at = timezone.now()
        document.save(
            update_fields=[
                "review_state",
                "review_reason",
                "reviewed_by",
                "reviewed_at",
                "updated_at",
            ]
        )
        audit_record(
            actor=by,
            action=AuditAction.REVIEW,
            obj=document,
            patient=document.patient.user,
            detail={"what": "document_upload", "outcome": document.review_state},
        )
    return document


# --- Clinic documents --------------------------------------------------------------------------


def _new_job(document: Document, *, by: User | None) -> PdfRender:
    return PdfRender.objects.create(
        document=document,
        requested_by=by if by is not None and by.is_authenticated else None,
        language=_language(document.patient),
    )


def document_issue(
    *,
    by: User | None,
    patient: PatientProfile,
    kind: str,
    title: str,
    body: str,
    visit: Visit | None = None,
    release: bool = False,
) -> Document:
    """A doctor writes a referral, discharge summary, prescription or certificate; its
    PDF is rendered by a worker. With `release` the patient sees it (once ready)."""
    if not policies.can_issue_document(by, patient):
        raise PermissionDenied
    if kind not in ISSUED_KINDS:
        raise ValidationError({"kind": _("Choose the kind of document.")})
    title, body = (title or "").strip(), (body or "").strip()
    errors = {}
    if not title:
        errors["title"] = _("Give the document a title.")
    elif len(title) > TITLE_MAX_LENGTH:
        errors["title"] = _("The title is too long (at most 200 characters).")
    if not body:
        errors["body"] = _("Write the text of the document.")
    elif len(body) > BODY_MAX_LENGTH:
        errors["body"] = _("The text is too long (at most 20000 characters).")
    if visit is not None and visit.patient_id != patient.pk:
        errors["visit"] = _("This visit belongs to another patient.")
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic():
        document = Document.objects.create(
            patient=patient,
            visit=visit,
            kind=kind,
            title=title,
            body=body,
            author=by,
            released_to_patient_at=now if release else None,
            released_by=by if release else None,
        )
        job = _new_job(document, by=by)
        _enqueue(job.pk)
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=document,
            patient=patient.user,
            detail={"what": "document", "kind": kind, "released": release, "job": job.pk},
        )
    return document


def document_release(*, by: User | None, document: Document) -> Document:
    """Show a document to its patient. Releasing a released document changes nothing;
    a rejected upload is never released."""
    if not policies.can_release_document(by, document):
        raise PermissionDenied
    with transaction.atomic():
        document = (
            Document.objects.select_for_update(of=("self",))
            .select_related("patient__user")
            .get(pk=document.pk)
        )
        if document.review_state == UploadState.REJECTED:
            raise ValidationError(_("A rejected file cannot be shown to the patient."))
        if document.released:
            return document
        document.released_to_patient_at = timezone.now()
        document.released_by = by
        document.save(update_fields=["released_to_patient_at", "released_by", "updated_at"])
        if document.has_file:
            _fire_ready(document)  # otherwise when its PDF is ready
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=document,
            patient=document.patient.user,
            detail={"what": "document", "released": True},
        )
    return document


# --- PDF render jobs ---------------------------------------------------------------------------


def _changed_at(source: LabReport | Visit) -> datetime:
    """When what a PDF of this report or visit shows last changed."""
    if isinstance(source, LabReport):
        return source.updated_at
    last_note = source.notes.filter(internal=False).aggregate(last=Max("created_at"))["last"]
    return max(source.updated_at, last_note) if last_note else source.updated_at


def pdf_render_request(
    *,
    by: User,
    lab_report: LabReport | None = None,
    visit: Visit | None = None,
    document: Document | None = None,
) -> PdfRender:
    """A PDF of a lab report or a visit summary (or a clinic document rendered again).

    Asking again returns the job already under way, or the ready one while what it
    shows has not changed; after a change a new document is rendered and, once ready,
    the old one's verification code is revoked as superseded. A patient asks only for
    what was released to them."""
    if sum(x is not None for x in (lab_report, visit, document)) != 1:
        raise ValueError("Give exactly one of lab_report, visit, document.")
    if document is not None:
        return _rerender(by=by, document=document)
    source: LabReport | Visit = lab_report if lab_report is not None else visit  # type: ignore[assignment]
    kind = DocumentKind.LAB_REPORT if lab_report is not None else DocumentKind.VISIT_SUMMARY
    profile = source.patient
    if not policies.can_request_pdf(by, profile, released_to_patient=source.released):
        raise PermissionDenied
    if lab_report is not None and lab_report.status not in RELEASABLE_STATUSES:
        raise ValidationError(_("A PDF is made of final or amended results only."))
    reason = _break_glass_reason(by, profile)
    now = timezone.now()
    with transaction.atomic():
        model = type(source)
        source = (
            model.objects.select_for_update(of=("self",))
            .select_related("patient__user")
            .get(pk=source.pk)
        )
        lookup = {"lab_report": source} if kind == DocumentKind.LAB_REPORT else {"visit": source}
        existing = (
            Document.objects.filter(patient=source.patient, kind=kind, **lookup)
            .order_by("-created_at", "-id")
            .first()
        )
        job = None
        if existing is not None:
            job = existing.renders.filter(state__in=ACTIVE_RENDER_STATES).first()
            fresh = (
                existing.has_file
                and existing.rendered_at is not None
                and existing.rendered_at >= _changed_at(source)
            )
            if job is None and fresh:
                job = existing.renders.filter(state=RenderState.READY).first()
            if job is None and not existing.has_file:
                job = _new_job(existing, by=by)
                _enqueue(job.pk)
            if job is not None and source.released and not existing.released:
                # A clinician's PDF of what the patient now sees: the patient may have it.
                existing.released_to_patient_at = now
                existing.released_by = by if by.role != Role.PATIENT else None
                existing.save(update_fields=["released_to_patient_at", "released_by", "updated_at"])
                if existing.has_file:
                    _fire_ready(existing)
        if job is None:
            title = _source_title(source, kind)
            new = Document.objects.create(
                patient=source.patient,
                kind=kind,
                title=title,
                author=None,
                visit=source if kind == DocumentKind.VISIT_SUMMARY else source.visit,
                lab_report=source if kind == DocumentKind.LAB_REPORT else None,
                released_to_patient_at=now if source.released else None,
                released_by=None,
            )
            job = _new_job(new, by=by)
            _enqueue(job.pk)
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=job,
            patient=source.patient.user,
            detail={
                "what": "pdf_request",
                "kind": kind,
                "source": source.pk,
                "document": job.document_id,
                "state": job.state,
            },
            break_glass=bool(reason),
            reason=reason,
        )
    return job


def _source_title(source: LabReport | Visit, kind: str) -> str:
    from records import presentation

    if kind == DocumentKind.LAB_REPORT:
        when = presentation.local_time(source.issued_at, "j E Y")
        return f"{source.test_type.name}, {when}"[:TITLE_MAX_LENGTH]
    when = presentation.local_time(source.started_at, "j E Y")
    return f"{_('Visit summary')}, {when}"[:TITLE_MAX_LENGTH]


def _rerender(*, by: User, document: Document) -> PdfRender:
    """A clinic-written document's PDF again (e.g. its file is missing or failed)."""
    if document.kind not in ISSUED_KINDS or not policies.can_view_document(by, document):
        raise PermissionDenied
    with transaction.atomic():
        document = Document.objects.select_for_update().get(pk=document.pk)
        job = document.renders.filter(state__in=ACTIVE_RENDER_STATES).first()
        if job is None and document.has_file:
            job = document.renders.filter(state=RenderState.READY).first()
        if job is None:
            job = _new_job(document, by=by)
            _enqueue(job.pk)
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=job,
            patient=document.patient.user,
            detail={"what": "pdf_request", "kind": document.kind, "document": document.pk},
        )
    return job


def _claim(job_id: int, now: datetime) -> PdfRender | None:
    """Take a job for rendering; None when there is nothing to do (ready, failed, gone,
    or another worker holds a fresh claim)."""
    with transaction.atomic():
        job = PdfRender.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state in (RenderState.READY, RenderState.FAILED):
            return None
        if job.state == RenderState.RENDERING and job.started_at > now - RENDER_LEASE:
            return None
        if job.attempts >= MAX_ATTEMPTS:
            _fail(job, RenderError.GAVE_UP, now)
            return None
        job.state = RenderState.RENDERING
        job.started_at = now
        job.attempts += 1
        job.save(update_fields=["state", "started_at", "attempts"])
    return job


def _fail(job: PdfRender, code: str, now: datetime) -> None:
    job.state = RenderState.FAILED
    job.error_code = code
    job.finished_at = now
    job.save(update_fields=["state", "error_code", "finished_at"])


def _load_for_render(document_id: int) -> Document:
    return Document.objects.select_related(
        "patient__user",
        "author__staff_profile__specialty",
        "author__staff_profile__location",
        "visit__location",
        "visit__doctor__staff_profile__specialty",
        "lab_report__test_type",
        "lab_report__visit__location",
        "lab_report__reviewed_by__staff_profile__specialty",
        "lab_report__ordered_by__staff_profile__specialty",
        "lab_report__ordered_by__staff_profile__location",
    ).get(pk=document_id)


def pdf_render_run(*, job_id: int) -> PdfRender | None:
    """Render one job's PDF, store it encrypted, issue its verification code and mark
    the job ready. Idempotent: a ready or failed job, or one another worker is rendering,
    is left alone; a render whose claim was taken over meanwhile is discarded."""
    from records import pdf

    claimed = _claim(job_id, timezone.now())
    if claimed is None:
        return PdfRender.objects.filter(pk=job_id).first()
    document = _load_for_render(claimed.document_id)
    code = verification.new_code()
    try:
        data = pdf.render_document(document, verification_code=code, language=claimed.language)
    except pdf.RenderFailed as exc:
        with transaction.atomic():
            job = PdfRender.objects.select_for_update().get(pk=claimed.pk)
            if job.state == RenderState.RENDERING and job.started_at == claimed.started_at:
                _fail(job, exc.code, timezone.now())
        logger.warning("PDF render job %s failed: %s", claimed.pk, exc.code)
        return PdfRender.objects.get(pk=claimed.pk)

    now = timezone.now()
    old_name = document.file.name if document.file else ""
    _store(document, data, content_type="application/pdf")
    new_name = document.file.name
    try:
        with transaction.atomic():
            job = PdfRender.objects.select_for_update().get(pk=claimed.pk)
            if job.state != RenderState.RENDERING or job.started_at != claimed.started_at:
                raise _Superseded
            locked = (
                Document.objects.select_for_update(of=("self",))
                .select_related("patient__user")
                .get(pk=document.pk)
            )
            locked.file.name = new_name
            locked.content_type, locked.size = document.content_type, document.size
            locked.sha256, locked.rendered_at = document.sha256, now
            locked.save(
                update_fields=[
                    "file",
                    "content_type",
                    "size",
                    "sha256",
                    "rendered_at",
                    "updated_at",
                ]
            )
            # The new PDF replaces earlier versions of this document and of the same
            # report or visit: their codes no longer vouch for what is current.
            earlier = DocumentVerification.objects.filter(revoked=False).filter(
                document__in=_versions_of(locked)
            )
            earlier.update(
                revoked=True, revoked_at=now, revoked_reason=VerificationRevocation.SUPERSEDED
            )
            DocumentVerification.objects.create(
                code=code, document=locked, issued_at=now, issuer=settings.CLINIC_NAME
            )
            job.state = RenderState.READY
            job.finished_at = now
            job.save(update_fields=["state", "finished_at"])
            if locked.visible_to_patient:
                _fire_ready(locked)
            if old_name:
                storage = locked.file.storage
                transaction.on_commit(lambda: storage.delete(old_name))
            audit_record(
                actor=None,
                action=AuditAction.CREATE,
                obj=locked,
                patient=locked.patient.user,
                detail={
                    "what": "document_pdf",
                    "kind": locked.kind,
                    "job": job.pk,
                    "requested_by": job.requested_by_id,
                    "size": locked.size,
                },
            )
    except (_Superseded, IntegrityError):
        # Another worker took the job over, or (vanishingly rare) the random code was
        # taken: drop this file; the job stays as it is and the sweep tries again.
        document.file.storage.delete(new_name)
        return PdfRender.objects.get(pk=claimed.pk)
    except Exception:
        document.file.storage.delete(new_name)
        raise
    return job


class _Superseded(Exception):
    pass


def _versions_of(document: Document) -> Any:
    if document.kind == DocumentKind.LAB_REPORT and document.lab_report_id:
        return Document.objects.filter(kind=document.kind, lab_report_id=document.lab_report_id)
    if document.kind == DocumentKind.VISIT_SUMMARY and document.visit_id:
        return Document.objects.filter(kind=document.kind, visit_id=document.visit_id)
    return Document.objects.filter(pk=document.pk)


def pdf_render_sweep(*, now: datetime | None = None) -> list[int]:
    """Send again the jobs whose message was lost (queued over a minute) and take back
    those whose worker died (rendering past the lease); give up after MAX_ATTEMPTS.
    Returns the ids queued again. Run every minute by beat (records.sweep_pdf_renders)."""
    now = now or timezone.now()
    requeued: list[int] = []
    with transaction.atomic():
        stale = list(
            PdfRender.objects.select_for_update(skip_locked=True).filter(
                state=RenderState.QUEUED, queued_at__lt=now - REQUEUE_AFTER
            )[:500]
        ) + list(
            PdfRender.objects.select_for_update(skip_locked=True).filter(
                state=RenderState.RENDERING, started_at__lt=now - RENDER_LEASE
            )[:500]
        )
        for job in stale:
            if job.attempts >= MAX_ATTEMPTS:
                _fail(job, RenderError.GAVE_UP, now)
                continue
            job.state = RenderState.QUEUED
            job.queued_at = now
            job.save(update_fields=["state", "queued_at"])
            requeued.append(job.pk)
            _enqueue(job.pk)
    return requeued


def pdf_render_nudge(*, job: PdfRender, now: datetime | None = None) -> bool:
    """The page watching a job found it still queued after REQUEUE_AFTER: send it again
    (the sweep would, a little later). True if sent."""
    now = now or timezone.now()
    if job.state != RenderState.QUEUED or job.queued_at >= now - REQUEUE_AFTER:
        return False
    with transaction.atomic():
        updated = PdfRender.objects.filter(
            pk=job.pk, state=RenderState.QUEUED, queued_at__lt=now - REQUEUE_AFTER
        ).update(queued_at=now)
        if updated:
            _enqueue(job.pk)
    return bool(updated)


# --- Verification codes -------------------------------------------------------------------------


def document_verification_revoke(*, by: User, verification_row: DocumentVerification) -> None:
    """Withdraw a printed PDF: the public page says "not valid" from now on."""
    document = verification_row.document
    if not policies.can_revoke_document_verification(by, document):
        raise PermissionDenied
    with transaction.atomic():
        row = DocumentVerification.objects.select_for_update().get(pk=verification_row.pk)
        if row.revoked:
            return
        row.revoked, row.revoked_at = True, timezone.now()
        row.revoked_reason = VerificationRevocation.WITHDRAWN
        row.save(update_fields=["revoked", "revoked_at", "revoked_reason"])
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=row,
            patient=document.patient.user,
            detail={"what": "document_verification", "revoked": True, "document": document.pk},
        )
