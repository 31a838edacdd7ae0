"""The patient's "My data" pages: download everything held about them (a FHIR R4
Bundle as JSON at once, or a readable PDF that a worker prepares while the page
watches), delete the account, and the history of these requests.

Thin views: one selector (which checks access, answers a recorded 404 for anyone but
the patient, and records views and downloads) or one service (which checks who may act
and refuses bad input with a message, changing nothing). Downloads are attachments with
`Cache-Control: no-store` and a file name without personal data. After a deletion the
patient is signed out and sees what was removed and what was kept, and why.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from records import presentation
from records import selectors_data_rights as selectors
from records import services_data_rights as services
from records.forms_data_rights import DeletionForm
from records.models import (
    EXPORT_FILE_DAYS,
    MEDICAL_RECORD_RETENTION_YEARS,
    DataRequest,
    DataRequestStatus,
)

POLL_SECONDS = 2
# The browser session of a patient who just deleted their account remembers which
# request's outcome to show (never the URL: the id is nobody else's business).
OUTCOME_SESSION_KEY = "data_deletion_outcome"
NO_STORE = "no-store, no-cache, must-revalidate, max-age=0, private"


def _attachment(data: bytes, *, content_type: str, name: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = NO_STORE
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Length"] = str(len(data))
    return response


def _decorate(requests: list[DataRequest]) -> None:
    for request in requests:
        request.requested_text = presentation.local_time(request.requested_at)
        request.completed_text = presentation.local_time(request.completed_at)
        request.expires_text = presentation.local_time(request.file_expires_at)


def _common() -> dict:
    return {
        "retention_years": MEDICAL_RECORD_RETENTION_YEARS,
        "retention_reason": services.retention_reason(),
        "export_days": EXPORT_FILE_DAYS,
    }


@login_required
@require_GET
def my_data(request: HttpRequest) -> HttpResponse:
    mine = selectors.my_data(request.user)
    _decorate(mine.requests)
    context = {**_common(), "mine": mine}
    return render(request, "records/data/my_data.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def export_json(request: HttpRequest) -> HttpResponse:
    profile = selectors.own_profile(request.user, "data_export")
    if request.method != "POST":
        return redirect("records:data_rights")
    try:
        data_request, bundle = services.data_export_json(by=request.user, profile=profile)
    except PermissionDenied:
        messages.error(request, _("You cannot download these data."))
        return redirect("records:data_rights")
    data = json.dumps(bundle, ensure_ascii=False, indent=2).encode("utf-8")
    name = f"fhir-export-{timezone.localdate(data_request.requested_at):%Y%m%d}.json"
    return _attachment(data, content_type="application/fhir+json; charset=utf-8", name=name)


@login_required
@require_http_methods(["GET", "POST"])
def export_pdf(request: HttpRequest) -> HttpResponse:
    profile = selectors.own_profile(request.user, "data_export")
    if request.method != "POST":
        return redirect("records:data_rights")
    try:
        data_request = services.data_export_pdf_request(by=request.user, profile=profile)
    except PermissionDenied:
        messages.error(request, _("You cannot download these data."))
        return redirect("records:data_rights")
    return redirect("records:data_request", public_id=data_request.public_id)


def _request_context(data_request: DataRequest) -> dict:
    _decorate([data_request])
    return {**_common(), "data_request": data_request, "poll_seconds": POLL_SECONDS}


@login_required
@require_GET
def data_request(request: HttpRequest, public_id: str) -> HttpResponse:
    found = selectors.data_request_get_for(request.user, public_id)
    services.data_export_nudge(data_request=found)
    return render(request, "records/data/request.html", _request_context(found))


@login_required
@require_GET
def data_request_status(request: HttpRequest, public_id: str) -> HttpResponse:
    """The live part of an export's page, polled by htmx until it is done or failed."""
    found = selectors.data_request_get_for(request.user, public_id, record=False)
    if found.status == DataRequestStatus.QUEUED:
        services.data_export_nudge(data_request=found)
    if request.htmx and request.GET.get("v") == found.status:
        return HttpResponse(status=204)  # unchanged: nothing re-rendered or re-announced
    return render(request, "records/data/_request_status.html", _request_context(found))


@login_required
@require_GET
def export_download(request: HttpRequest, public_id: str) -> HttpResponse:
    found, data = selectors.data_export_file_for(request.user, public_id)
    name = f"my-data-{timezone.localdate(found.completed_at):%Y%m%d}.pdf"
    return _attachment(data, content_type="application/pdf", name=name)


@login_required
@require_http_methods(["GET", "POST"])
def deletion(request: HttpRequest) -> HttpResponse:
    preview = selectors.deletion_preview(request.user)
    for appointment in preview.appointments:
        appointment.start_text = presentation.visit_time(
            appointment.starts_at, appointment.location
        )
    form = DeletionForm(request.POST or None)
    context = {**_common(), "preview": preview, "form": form}
    if request.method == "GET":
        return render(request, "records/data/delete.html", context)
    if form.is_valid():
        try:
            done = services.data_deletion_request(
                by=request.user,
                profile=preview.profile,
                password=form.cleaned_data["password"],
                confirm=form.cleaned_data["confirm"],
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        except PermissionDenied:
            form.add_error(None, _("Your account cannot be deleted here. Please ask the clinic."))
        else:
            logout(request)
            request.session[OUTCOME_SESSION_KEY] = str(done.public_id)
            return redirect("records:data_deletion_done")
    return render(request, "records/data/delete.html", context, status=400)


def _apply_errors(form: DeletionForm, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


@require_GET
def deletion_done(request: HttpRequest) -> HttpResponse:
    """After a deletion, signed out: what was removed, what was kept and why. Without a
    deletion in this browser's session it explains the rule in general."""
    outcome = selectors.deletion_outcome(request.session.get(OUTCOME_SESSION_KEY))
    context = {**_common(), "outcome": outcome}
    if outcome is not None:
        context["completed_text"] = presentation.local_time(outcome.completed_at)
    response = render(request, "records/data/deleted.html", context)
    response["Cache-Control"] = NO_STORE
    return response
