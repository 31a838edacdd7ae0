"""Documents pages: the patient's "My documents" (released documents, their uploads
with the review state, PDFs of released results and visits), a document and its
download, a PDF job that the page watches until it is ready; the clinicians' documents
of a patient, attaching a file to a visit, the upload review queue; and the public
check of a printed verification code.

Thin views: one selector or service each. Who may open a page is decided by the
selectors (a recorded 404 otherwise), who may write by the services. Downloads are
attachments with `Cache-Control: no-store` and a file name without personal data.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from accounts import policies
from accounts.models import Role
from audit.context import client_ip
from records import presentation
from records import selectors_documents as selectors
from records import services_documents as services
from records.forms_documents import (
    PatientUploadForm,
    StaffUploadForm,
    UploadReviewForm,
    VerifyForm,
)
from records.models import Document, PdfRender, RenderState, UploadState
from records.uploads import limit_uploads
from records.verification import display_code, normalize_code

logger = logging.getLogger(__name__)

POLL_SECONDS = 2
# The public check: at most this many lookups per address in the window.
VERIFY_LIMIT = 20
VERIFY_WINDOW_SECONDS = 600

EXTENSIONS = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}


def _apply_errors(form, exc: ValidationError) -> None:  # noqa: ANN001
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _is_xhr(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


def _decorate(documents) -> None:  # noqa: ANN001
    """Display fields: local dates, and for PDFs the state of the newest render job."""
    for document in documents:
        document.created_text = presentation.local_time(document.created_at)
        document.reviewed_text = presentation.local_time(document.reviewed_at)
        job = selectors.latest_render(document)
        document.job = job
        if document.has_file:
            document.file_state = "ready"
        elif job is not None and job.state == RenderState.FAILED:
            document.file_state = "failed"
        else:
            document.file_state = "preparing"


def _download(document: Document, data: bytes) -> HttpResponse:
    content_type = document.content_type or "application/octet-stream"
    extension = EXTENSIONS.get(content_type, "bin")
    # No personal data in the name: the kind and the date only.
    name = f"{document.kind}-{document.created_at:%Y%m%d}.{extension}"
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0, private"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Length"] = str(len(data))
    return response


# --- Patient -----------------------------------------------------------------------------------


@login_required
@require_GET
def my_documents(request: HttpRequest) -> HttpResponse:
    mine = selectors.my_documents(request.user)
    _decorate(mine.documents)
    _decorate(mine.uploads)
    for report in mine.reports:
        report.issued_text = presentation.local_time(report.issued_at, "j E Y")
    for visit in mine.visits:
        visit.started_text = presentation.local_time(visit.started_at, "j E Y")
    context = {
        "mine": mine,
        "form": PatientUploadForm(),
        "max_mb": services.UPLOAD_MAX_BYTES // (1024 * 1024),
    }
    return render(request, "records/documents/my_documents.html", context)


def _upload_response(
    request: HttpRequest,
    form,
    template: str,
    context: dict,
    status: int = 400,  # noqa: ANN001
) -> HttpResponse:
    if _is_xhr(request):
        return render(request, "records/documents/_upload_form.html", context, status=status)
    return render(request, template, context, status=status)


@csrf_exempt  # the token is checked below, after the size-limited upload handler is in
@login_required
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    handler = limit_uploads(request, services.UPLOAD_MAX_BYTES)
    return _patient_upload(request, handler)


@csrf_protect
def _patient_upload(request: HttpRequest, handler) -> HttpResponse:  # noqa: ANN001
    user = request.user
    if user.role != Role.PATIENT or not hasattr(user, "patient_profile"):
        raise selectors.deny(user, "document_upload")
    form = PatientUploadForm(request.POST or None, request.FILES or None)
    context = {
        "form": form,
        "action": reverse("records:document_upload"),
        "max_mb": services.UPLOAD_MAX_BYTES // (1024 * 1024),
    }
    template = "records/documents/upload.html"
    if request.method == "GET":
        return render(request, template, context)
    if handler.too_large:
        form.is_valid()
        form.errors.pop("file", None)
        form.add_error("file", _too_large_message())
        return _upload_response(request, form, template, context)
    if not form.is_valid():
        return _upload_response(request, form, template, context)
    try:
        services.document_upload(
            by=user,
            patient=user.patient_profile,
            upload=form.cleaned_data["file"],
            title=form.cleaned_data["title"],
        )
    except ValidationError as exc:
        _apply_errors(form, exc)
        return _upload_response(request, form, template, context)
    messages.success(
        request, _("Your file is uploaded. The clinic will review it; its state is shown here.")
    )
    target = reverse("records:documents")
    if _is_xhr(request):
        return JsonResponse({"redirect": target})
    return redirect(target)


def _too_large_message() -> str:
    return _("The file is too large: the limit is %(mb)d MB.") % {
        "mb": services.UPLOAD_MAX_BYTES // (1024 * 1024)
    }


@login_required
@require_GET
def document_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    document = selectors.document_get_for(request.user, public_id, audience="patient")
    _decorate([document])
    return render(request, "records/documents/detail.html", {"document": document})


@login_required
@require_GET
def document_download(request: HttpRequest, public_id: str) -> HttpResponse:
    document, data = selectors.document_file_for(request.user, public_id, audience="patient")
    return _download(document, data)


def _job_redirect(job: PdfRender) -> HttpResponse:
    return redirect("records:pdf_job", public_id=job.public_id)


def _request_pdf(request: HttpRequest, *, report_id=None, visit_id=None, back: str):  # noqa: ANN001, ANN202
    if report_id is not None:
        source = selectors.lab_report_for_pdf(request.user, report_id)
        kwargs = {"lab_report": source}
    else:
        source = selectors.visit_for_pdf(request.user, visit_id)
        kwargs = {"visit": source}
    if request.method != "POST":
        return redirect(back)
    try:
        job = services.pdf_render_request(by=request.user, **kwargs)
    except PermissionDenied:
        messages.error(request, _("You cannot get a PDF of this."))
        return redirect(back)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(back)
    return _job_redirect(job)


@login_required
@require_http_methods(["GET", "POST"])
def request_report_pdf(request: HttpRequest, public_id: str) -> HttpResponse:
    back = reverse(
        "records:documents" if request.user.role == Role.PATIENT else "records:staff_result",
        args=[] if request.user.role == Role.PATIENT else [public_id],
    )
    return _request_pdf(request, report_id=public_id, back=back)


@login_required
@require_http_methods(["GET", "POST"])
def request_visit_pdf(request: HttpRequest, public_id: str) -> HttpResponse:
    back = reverse(
        "records:documents" if request.user.role == Role.PATIENT else "records:staff_visit",
        args=[] if request.user.role == Role.PATIENT else [public_id],
    )
    return _request_pdf(request, visit_id=public_id, back=back)


def _job_context(request: HttpRequest, job: PdfRender) -> dict:
    document = job.document
    staff = request.user.role != Role.PATIENT
    download = ""
    if job.state == RenderState.READY and document.has_file:
        download = reverse(
            "records:staff_document_download" if staff else "records:document_download",
            args=[document.public_id],
        )
    return {
        "job": job,
        "document": document,
        "download_url": download,
        "poll_seconds": POLL_SECONDS,
        "staff": staff,
        "profile": document.patient if staff else None,
    }


@login_required
@require_GET
def pdf_job(request: HttpRequest, public_id: str) -> HttpResponse:
    job = selectors.pdf_render_get_for(request.user, public_id)
    services.pdf_render_nudge(job=job)
    return render(request, "records/documents/pdf_job.html", _job_context(request, job))


@login_required
@require_GET
def pdf_job_status(request: HttpRequest, public_id: str) -> HttpResponse:
    """The live part of the job page, polled by htmx every POLL_SECONDS until the job is
    ready or failed (the answer then has no trigger, so polling stops)."""
    job = selectors.pdf_render_get_for(request.user, public_id, record=False)
    if job.state == RenderState.QUEUED:
        services.pdf_render_nudge(job=job)
    if request.htmx and request.GET.get("v") == job.state:
        return HttpResponse(status=204)  # unchanged: nothing re-rendered or re-announced
    return render(request, "records/documents/_pdf_status.html", _job_context(request, job))


# --- Staff -------------------------------------------------------------------------------------


def _staff_documents_context(request: HttpRequest, profile_id: int) -> dict:
    found = selectors.patient_documents(request.user, profile_id)
    _decorate(found.documents)
    for visit in found.visits:
        visit.started_text = presentation.local_time(visit.started_at)
    return {
        "profile": found.profile,
        "documents": found.documents,
        "visits": found.visits,
        "break_glass": found.break_glass,
        "pending": sum(1 for d in found.documents if d.review_state == UploadState.PENDING),
    }


@login_required
@require_GET
def staff_patient_documents(request: HttpRequest, profile_id: int) -> HttpResponse:
    context = _staff_documents_context(request, profile_id)
    return render(request, "records/documents/staff_list.html", context)


@login_required
@require_GET
def staff_patient_documents_panel(request: HttpRequest, profile_id: int) -> HttpResponse:
    """The documents section of the chart, loaded into it by htmx."""
    context = _staff_documents_context(request, profile_id)
    return render(request, "records/documents/_staff_documents_table.html", context)


def _staff_document_context(request: HttpRequest, document: Document, form=None) -> dict:  # noqa: ANN001
    _decorate([document])
    user = request.user
    reviewable = (
        document.is_upload
        and document.review_state == UploadState.PENDING
        and document.uploaded_by_id == document.patient.user_id
        and policies.can_review_document_upload(user, document)
    )
    return {
        "document": document,
        "profile": document.patient,
        "form": form or UploadReviewForm(),
        "can_review": reviewable,
        "can_release": not document.released
        and document.review_state != UploadState.REJECTED
        and policies.can_release_document(user, document),
        "verification": document.verifications.filter(revoked=False).first(),
    }


@login_required
@require_GET
def staff_document(request: HttpRequest, public_id: str) -> HttpResponse:
    document = selectors.document_get_for(request.user, public_id, audience="staff")
    context = _staff_document_context(request, document)
    return render(request, "records/documents/staff_detail.html", context)


@login_required
@require_GET
def staff_document_download(request: HttpRequest, public_id: str) -> HttpResponse:
    document, data = selectors.document_file_for(request.user, public_id, audience="staff")
    return _download(document, data)


@login_required
@require_http_methods(["GET", "POST"])
def staff_document_review(request: HttpRequest, public_id: str) -> HttpResponse:
    document = selectors.document_get_for(request.user, public_id, audience="staff")
    if request.method != "POST":
        return redirect("records:staff_document", public_id=document.public_id)
    form = UploadReviewForm(request.POST)
    if form.is_valid():
        try:
            services.document_upload_review(
                by=request.user,
                document=document,
                accept=form.accept,
                reason=form.cleaned_data["reason"],
            )
        except PermissionDenied:
            messages.error(request, _("You cannot review this file."))
            return redirect("records:staff_document", public_id=document.public_id)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            if form.accept:
                messages.success(request, _("The file is accepted into the record."))
            else:
                messages.success(request, _("The file is rejected; the patient sees the reason."))
            return redirect("records:upload_queue")
    context = _staff_document_context(request, document, form)
    return render(request, "records/documents/staff_detail.html", context, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def staff_document_release(request: HttpRequest, public_id: str) -> HttpResponse:
    document = selectors.document_get_for(request.user, public_id, audience="staff")
    if request.method == "POST":
        try:
            services.document_release(by=request.user, document=document)
        except PermissionDenied:
            messages.error(request, _("Only a doctor in charge of the patient can do this."))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, _("The document is shown to the patient."))
    return redirect("records:staff_document", public_id=document.public_id)


@csrf_exempt  # the token is checked below, after the size-limited upload handler is in
@login_required
@require_http_methods(["GET", "POST"])
def staff_visit_upload(request: HttpRequest, public_id: str) -> HttpResponse:
    handler = limit_uploads(request, services.UPLOAD_MAX_BYTES)
    return _staff_visit_upload(request, public_id, handler)


@csrf_protect
def _staff_visit_upload(request: HttpRequest, public_id: str, handler) -> HttpResponse:  # noqa: ANN001
    visit = selectors.visit_for_upload(request.user, public_id)
    form = StaffUploadForm(request.POST or None, request.FILES or None)
    context = {
        "form": form,
        "visit": visit,
        "profile": visit.patient,
        "visit_text": presentation.local_time(visit.started_at),
        "action": reverse("records:staff_visit_upload", args=[visit.public_id]),
        "max_mb": services.UPLOAD_MAX_BYTES // (1024 * 1024),
        "staff": True,
    }
    template = "records/documents/staff_upload.html"
    if request.method == "GET":
        return render(request, template, context)
    if handler.too_large:
        form.is_valid()
        form.errors.pop("file", None)
        form.add_error("file", _too_large_message())
        return _upload_response(request, form, template, context)
    if not form.is_valid():
        return _upload_response(request, form, template, context)
    try:
        document = services.document_upload(
            by=request.user,
            patient=visit.patient,
            upload=form.cleaned_data["file"],
            title=form.cleaned_data["title"],
            visit=visit,
            release=form.cleaned_data["release"],
        )
    except PermissionDenied:
        messages.error(request, _("You cannot add files to this record."))
        target = reverse("records:staff_visit", args=[visit.public_id])
    except ValidationError as exc:
        _apply_errors(form, exc)
        return _upload_response(request, form, template, context)
    else:
        messages.success(request, _("The file is attached to the visit."))
        target = reverse("records:staff_document", args=[document.public_id])
    if _is_xhr(request):
        return JsonResponse({"redirect": target})
    return redirect(target)


@login_required
@require_GET
def upload_queue(request: HttpRequest) -> HttpResponse:
    documents = selectors.upload_review_queue(request.user)
    _decorate(documents)
    return render(request, "records/documents/upload_queue.html", {"documents": documents})


# --- Public: verification of a printed code -----------------------------------------------------


def _rate_limited(request: HttpRequest) -> bool:
    """A light per-address limit on lookups (codes are 60 random bits; this keeps
    scanners from hammering the page). Counted in the cache, keyed by a hash of the IP."""
    address = client_ip(request) or "unknown"
    key = "verify:" + hashlib.sha256(address.encode()).hexdigest()[:32]
    try:
        added = cache.add(key, 1, VERIFY_WINDOW_SECONDS)
        count = 1 if added else cache.incr(key)
    except Exception:  # noqa: BLE001 - cache down: the check still answers (codes are 60 bits)
        logger.warning("verification rate limit unavailable")
        return False
    return count > VERIFY_LIMIT


def _verify_page(request: HttpRequest, context: dict, status: int = 200) -> HttpResponse:
    response = render(request, "records/documents/verify.html", context, status=status)
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


@require_GET
def verify_form(request: HttpRequest) -> HttpResponse:
    form = VerifyForm(request.GET or None)
    if request.GET and form.is_valid():
        code = normalize_code(form.cleaned_data["code"])
        if code is not None:
            return redirect("verify:check", code=display_code(code))
        return verify_check(request, form.cleaned_data["code"][:32])
    return _verify_page(request, {"form": form, "clinic": settings.CLINIC_NAME})


@require_GET
def verify_check(request: HttpRequest, code: str) -> HttpResponse:
    form = VerifyForm(initial={"code": code})
    context = {"form": form, "clinic": settings.CLINIC_NAME, "checked": True}
    if _rate_limited(request):
        context.update(limited=True)
        return _verify_page(request, context, status=429)
    result = selectors.verification_check(code)
    context.update(result=result)
    if result is not None:
        context["issued"] = presentation.local_time(result.issued_at, "j E Y")
    return _verify_page(request, context, status=200 if result is not None else 404)
