"""Clinician pages: the review queue, a result with the review form, a patient's chart
(visits and every result, unreleased ones marked), a visit with its notes, a trend, and
the doctor's visit pages: record a visit (optionally for one of the patient's
appointments with them), edit its summary and ICD-10 diagnoses, sign and release it.

Staff pages sit behind the staff MFA gate (middleware). Who may open each page is
decided by the selectors (accounts.policies); who may write by the services. A refusal
to open is a recorded 404; a refusal to write on a page one may read is a message.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts import policies
from records import presentation, selectors, services
from records.forms import (
    DiagnosisFormSet,
    LabReviewForm,
    VisitCreateForm,
    VisitForm,
    VisitNoteForm,
)


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
        "can_record_visit": policies.can_record_visit(request.user, chart.profile),
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
        "can_edit": policies.can_edit_visit(request.user, visit),
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
            # Recorded like any refusal (the page itself was open to this clinician).
            selectors.deny(request.user, "visit_release", obj=visit, patient=visit.patient.user)
            messages.error(request, _("Only the visit's doctor can sign and release it."))
        else:
            messages.success(request, _("The visit is signed and released to the patient."))
    return redirect("records:staff_visit", public_id=visit.public_id)


# --- The doctor's visit: record, edit summary and diagnoses --------------------------------


def _doctor_zone(user) -> str:  # noqa: ANN001
    """Times typed on the visit form are in the doctor's location's zone."""
    location = getattr(getattr(user, "staff_profile", None), "location", None)
    return getattr(location, "time_zone", "") or settings.CLINIC_TIME_ZONE


def _appointment_label(appointment) -> str:  # noqa: ANN001
    return (
        f"{presentation.visit_time(appointment.starts_at, appointment.location)} — "
        f"{appointment.consultation_type.name} ({appointment.get_status_display().lower()})"
    )


def _visit_form_context(form, formset, **extra) -> dict:  # noqa: ANN001, ANN003
    has_errors = bool(
        form.errors or formset.non_form_errors() or any(f.errors for f in formset.forms)
    )
    return {"form": form, "formset": formset, "has_errors": has_errors, **extra}


@login_required
@require_http_methods(["GET", "POST"])
def visit_new(request: HttpRequest, profile_id: int) -> HttpResponse:
    """A doctor in charge of the patient records a visit from the chart."""
    found = selectors.visit_new_for(request.user, profile_id)
    zone = _doctor_zone(request.user)
    data = request.POST if request.method == "POST" else None
    form = VisitCreateForm(
        data, appointments=found.appointments, appointment_label=_appointment_label
    )
    formset = DiagnosisFormSet(data, prefix="diagnoses")
    status = 200
    if request.method == "POST":
        with timezone.override(ZoneInfo(zone)):
            valid = form.is_valid() & formset.is_valid()
        if valid:
            appointment = form.cleaned_data["appointment"]
            staff_profile = getattr(request.user, "staff_profile", None)
            try:
                visit = services.visit_create(
                    by=request.user,
                    patient=found.profile,
                    appointment=appointment,
                    started_at=form.cleaned_data["started_at"],
                    # With an appointment, its location; else where the doctor works.
                    location=None if appointment else getattr(staff_profile, "location", None),
                    summary=form.cleaned_data["summary"],
                    diagnoses=formset.diagnoses(),
                )
            except PermissionDenied:
                messages.error(request, _("You cannot record visits of this patient."))
                return redirect("records:chart", profile_id=found.profile.pk)
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(
                    request,
                    _("The visit is recorded. Add notes, then sign and release it to the patient."),
                )
                return redirect("records:staff_visit", public_id=visit.public_id)
        status = 400
    context = _visit_form_context(
        form, formset, profile=found.profile, zone=zone, creating=True, visit=None
    )
    return render(request, "records/staff/visit_form.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def visit_edit(request: HttpRequest, public_id: str) -> HttpResponse:
    """The visit's doctor edits its summary and diagnoses (also after release)."""
    visit = selectors.visit_get_for(request.user, public_id, purpose="edit")
    data = request.POST if request.method == "POST" else None
    form = VisitForm(data, initial={"summary": visit.summary})
    formset = DiagnosisFormSet(
        data,
        prefix="diagnoses",
        initial=[{"code": d.code, "text": d.text, "kind": d.kind} for d in visit.diagnoses.all()],
    )
    status = 200
    if request.method == "POST":
        if form.is_valid() & formset.is_valid():
            try:
                services.visit_update(
                    by=request.user,
                    visit=visit,
                    summary=form.cleaned_data["summary"],
                    diagnoses=formset.diagnoses(),
                )
            except PermissionDenied:
                selectors.deny(request.user, "visit_edit", obj=visit, patient=visit.patient.user)
                messages.error(request, _("Only the visit's doctor can change it."))
                return redirect("records:staff_visit", public_id=visit.public_id)
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(
                    request,
                    _("Changes saved. The patient sees them.")
                    if visit.released
                    else _("Changes saved."),
                )
                return redirect("records:staff_visit", public_id=visit.public_id)
        status = 400
    visit.started_text = presentation.visit_time(visit.started_at, visit.location)
    context = _visit_form_context(form, formset, profile=visit.patient, visit=visit, creating=False)
    return render(request, "records/staff/visit_form.html", context, status=status)
