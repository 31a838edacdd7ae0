"""Clinician pages: the review queue, a result with the review form, a patient's chart
(visits and every result, unreleased ones marked), a visit with its notes, a trend.

Staff pages sit behind the staff MFA gate (middleware). Who may open each page is
decided by the selectors (accounts.policies); who may write by the services. A refusal
to open is a recorded 404; a refusal to write on a page one may read is a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts import policies
from records import presentation, selectors, services
from records.forms import LabReviewForm, VisitNoteForm


def _apply_errors(form, exc: ValidationError) -> None:  # noqa: ANN001
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _decorate(reports) -> None:  # noqa: ANN001
    for report in reports:
        report.issued_text = presentation.local_time(report.issued_at)
        report.abnormal_count = presentation.abnormal_count(report)
        report.badge_variant, report.badge_label = presentation.review_badge(report)


@login_required
@require_GET
def review_queue(request: HttpRequest) -> HttpResponse:
    reports = selectors.review_queue(request.user)
    _decorate(reports)
    return render(request, "records/staff/review_queue.html", {"reports": reports})


def _report_context(request: HttpRequest, report, form: LabReviewForm) -> dict:  # noqa: ANN001
    _decorate([report])
    return {
        "report": report,
        "profile": report.patient,
        "rows": presentation.observation_rows(report),
        "issued": presentation.local_time(report.issued_at),
        "collected": presentation.local_time(report.collected_at),
        "reviewed": presentation.local_time(report.reviewed_at),
        "form": form,
        "can_review": policies.can_review_lab_report(request.user, report),
        "can_release": report.status in ("final", "amended")
        and not report.released
        and report.review_state != "pending"
        and policies.can_release_lab_report(request.user, report),
    }


@login_required
@require_http_methods(["GET", "POST"])
def result(request: HttpRequest, public_id: str) -> HttpResponse:
    report = selectors.lab_report_get_for(request.user, public_id, audience="staff")
    form = LabReviewForm(
        request.POST or None, initial={"comment": report.review_comment, "action": "save"}
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.lab_report_review(
                    by=request.user,
                    report=report,
                    comment=form.cleaned_data["comment"],
                    release=form.release,
                )
            except PermissionDenied:
                messages.error(request, _("You cannot review this result."))
                return redirect("records:staff_result", public_id=report.public_id)
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                if form.release:
                    messages.success(
                        request, _("Comment saved. The result is released to the patient.")
                    )
                else:
                    messages.success(request, _("Comment saved."))
                return redirect("records:staff_result", public_id=report.public_id)
        status = 400
    return render(
        request, "records/staff/result.html", _report_context(request, report, form), status=status
    )


@login_required
@require_http_methods(["GET", "POST"])
def result_release(request: HttpRequest, public_id: str) -> HttpResponse:
    report = selectors.lab_report_get_for(request.user, public_id, audience="staff")
    if request.method == "POST":
        try:
            services.lab_report_release(by=request.user, report=report)
        except PermissionDenied:
            messages.error(request, _("You cannot release this result."))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, _("The result is released to the patient."))
    return redirect("records:staff_result", public_id=report.public_id)


@login_required
@require_GET
def chart(request: HttpRequest, profile_id: int) -> HttpResponse:
    chart = selectors.patient_chart(request.user, profile_id, request.GET.get("page"))
    _decorate(chart.results.object_list)
    for visit in chart.visits:
        visit.started_text = presentation.visit_time(visit.started_at, visit.location)
    analytes = {}
    for report in chart.results.object_list:
        for obs in report.observations.all():
            if obs.value_quantity is not None:
                analytes.setdefault(obs.loinc_code, obs.name)
    context = {
        "chart": chart,
        "profile": chart.profile,
        "analytes": sorted(analytes.items(), key=lambda item: item[1]),
    }
    return render(request, "records/staff/chart.html", context)


@login_required
@require_GET
def trend(request: HttpRequest, profile_id: int, loinc_code: str) -> HttpResponse:
    profile, series = selectors.staff_trend(request.user, profile_id, loinc_code)
    context = {
        "profile": profile,
        "chart": presentation.trend_chart(series, loinc_code=loinc_code),
        "table": presentation.trend_rows(series),
        "help": presentation.TREND_HELP,
    }
    return render(request, "records/staff/trend.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def visit(request: HttpRequest, public_id: str) -> HttpResponse:
    visit = selectors.visit_get_for(request.user, public_id)
    form = VisitNoteForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.visit_note_add(
                    by=request.user,
                    visit=visit,
                    text=form.cleaned_data["text"],
                    internal=form.internal,
                )
            except PermissionDenied:
                messages.error(request, _("You cannot write notes on this visit."))
                return redirect("records:staff_visit", public_id=visit.public_id)
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(request, _("Note saved."))
                return redirect("records:staff_visit", public_id=visit.public_id)
        status = 400
    visit.started_text = presentation.visit_time(visit.started_at, visit.location)
    visit.ended_text = presentation.visit_time(visit.ended_at, visit.location)
    visit.released_text = presentation.local_time(visit.released_at)
    reports = list(visit.lab_reports.all())
    for report in reports:
        report.issued_text = presentation.local_time(report.issued_at)
        report.badge_variant, report.badge_label = presentation.review_badge(report)
    notes = list(visit.notes.all())
    for note in notes:
        note.written_text = presentation.local_time(note.created_at)
    context = {
        "visit": visit,
        "profile": visit.patient,
        "notes": notes,
        "reports": reports,
        "form": form,
        "can_write": policies.can_write_visit_note(request.user, visit.patient),
        "can_release": not visit.released and policies.can_release_visit(request.user, visit),
    }
    return render(request, "records/staff/visit.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def visit_release(request: HttpRequest, public_id: str) -> HttpResponse:
    visit = selectors.visit_get_for(request.user, public_id)
    if request.method == "POST":
        try:
            services.visit_release(by=request.user, visit=visit)
        except PermissionDenied:
            messages.error(request, _("Only the visit's doctor can sign and release it."))
        else:
            messages.success(request, _("The visit is signed and released to the patient."))
    return redirect("records:staff_visit", public_id=visit.public_id)
