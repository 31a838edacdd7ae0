"""The doctor's consultation screen of a video appointment.

- `consult`: the full page (usable without the video, e.g. after the call): the
  appointment, the patient's context and the four forms.
- `consult_panel`: the same context and forms as an htmx partial, which the doctor's
  video page loads beside the call (`?part=context`: the context alone, which the panel
  reloads itself after each write, leaving the forms being typed in alone).
- `consult_note`, `consult_prescription`, `consult_referral`, `consult_summary`: small
  forms posting here. With htmx the answer is the form again (fresh with "Saved", or
  with its errors) and an `HX-Trigger: consult-changed` event after a write; without
  JavaScript a redirect to the page (or the page with the errors, status 400).

Thin views: the gate is `selectors_consult.consultation_appointment_get_for` (a recorded
404 for anyone but the appointment's doctor), the context is read by
`selectors_consult.consult_context` (records' audited selectors), and every write is one
call to `services_consult`, which calls records' services. A write records refuse is a
message on the form; bad input is a field error and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts import policies
from records import presentation
from records import selectors as records_selectors
from records.models import INTAKE_FIELDS, IntakeStatus
from telemedicine import selectors_consult, services_consult
from telemedicine.forms_consult import (
    ConsultNoteForm,
    ConsultPrescriptionForm,
    ConsultReferralForm,
    ConsultSummaryForm,
)
from telemedicine.models import ConsultationState
from telemedicine.selectors_video import consultation_for

CHANGED_EVENT = "consult-changed"
TEMPLATES = "telemedicine/consult"


# --- Presentation ------------------------------------------------------------------------


def _abnormal_rows(report: Any) -> list[Any]:
    return [
        row
        for row in presentation.observation_rows(report)
        if row.flag is not None and row.flag.abnormal
    ]


def _decorate_intake(item: Any) -> None:
    form = item.form
    item.answers = []
    if form is None or (form.status == IntakeStatus.DRAFT and form.is_empty):
        item.state_label, item.state_variant = _("Not started"), "warning"
    elif form.status == IntakeStatus.DRAFT:
        item.state_label, item.state_variant = _("Draft saved, not sent"), "pending"
    else:
        item.state_label, item.state_variant = _("Sent to the doctor"), "success"
        item.submitted_text = presentation.local_time(form.submitted_at)
        item.answers = [
            (capfirst(form._meta.get_field(name).verbose_name), getattr(form, name))
            for name in INTAKE_FIELDS
        ]


def _call_text(call: Any) -> str:
    if call is None:
        return ""
    if call.state == ConsultationState.ENDED:
        return _("Ended")
    return call.get_state_display()


def _decorate(ctx: selectors_consult.ConsultContext) -> None:
    appointment = ctx.appointment
    appointment.when_text = presentation.visit_time(appointment.starts_at, appointment.location)
    for visit in [*ctx.visits, *ctx.older_visits]:
        visit.started_text = presentation.visit_time(visit.started_at, visit.location)
        visit.is_this = visit.appointment_id == appointment.pk
    for report in [*ctx.results, *ctx.older_results]:
        report.issued_text = presentation.local_time(report.issued_at)
        report.badge_variant, report.badge_label = presentation.review_badge(report)
        report.abnormal_rows = _abnormal_rows(report)
    _decorate_intake(ctx.intake)
    for document in ctx.uploads:
        document.created_text = presentation.local_time(document.created_at)
    for prescription in ctx.prescriptions:
        prescription.issued_text = presentation.local_time(prescription.issued_at, "j E Y")
    for call in ctx.calls:
        start = call.started_at or call.appointment.starts_at
        call.when_text = presentation.visit_time(start, call.appointment.location)
        call.minutes = (
            max(1, round((call.ended_at - call.started_at).total_seconds() / 60))
            if call.started_at and call.ended_at
            else None
        )
    ctx.call_text = _call_text(ctx.call)
    ctx.call_live = selectors_consult.call_is_live(ctx.call)


def _forms(ctx: selectors_consult.ConsultContext, **bound: Form) -> dict[str, Form]:
    visit = ctx.visit
    forms = {
        "note_form": ConsultNoteForm(),
        "prescription_form": ConsultPrescriptionForm(),
        "referral_form": ConsultReferralForm(),
        "summary_form": ConsultSummaryForm(
            initial={"summary": visit.summary if visit is not None else "", "end_call": True}
        ),
    }
    forms.update(bound)
    return forms


def _context(request: HttpRequest, appointment: Any, **bound: Form) -> dict[str, Any]:
    ctx = selectors_consult.consult_context(request.user, appointment)
    _decorate(ctx)
    return {
        "ctx": ctx,
        "appointment": appointment,
        "profile": ctx.profile,
        "visit": ctx.visit,
        "call_live": ctx.call_live,
        "can_write_visit": policies.can_record_visit(request.user, ctx.profile),
        **_forms(ctx, **bound),
    }


# --- Pages -------------------------------------------------------------------------------


@login_required
@require_GET
def consult(request: HttpRequest, public_id: str) -> HttpResponse:
    appointment = selectors_consult.consultation_appointment_get_for(request.user, public_id)
    return render(request, f"{TEMPLATES}/consult.html", _context(request, appointment))


@login_required
@require_GET
def consult_panel(request: HttpRequest, public_id: str) -> HttpResponse:
    appointment = selectors_consult.consultation_appointment_get_for(request.user, public_id)
    only_context = request.GET.get("part") == "context"
    template = "_context.html" if only_context else "_panel.html"
    return render(request, f"{TEMPLATES}/{template}", _context(request, appointment))


# --- Writes --------------------------------------------------------------------------------


def _apply_errors(form: Form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _fragment(
    request: HttpRequest,
    appointment: Any,
    name: str,
    form: Form,
    *,
    done: str = "",
    visit: Any = None,
) -> HttpResponse:
    call = consultation_for(appointment)
    context = {
        "appointment": appointment,
        "form": form,
        "done": done,
        "visit": visit,
        "call_live": selectors_consult.call_is_live(call),
    }
    html = render_to_string(f"{TEMPLATES}/_{name}_form.html", context, request=request)
    response = HttpResponse(html)
    if done:
        response["HX-Trigger"] = CHANGED_EVENT
    return response


def _action(
    request: HttpRequest,
    public_id: str,
    *,
    name: str,
    form_class: type[Form],
    save: Callable[[Any, Any], Any],
    done: str,
    refused: str,
) -> HttpResponse:
    appointment = selectors_consult.consultation_appointment_get_for(
        request.user, public_id, what=f"consultation_{name}"
    )
    if request.method != "POST":
        return redirect("telemedicine:consult", public_id=appointment.public_id)
    form = form_class(request.POST)
    if form.is_valid():
        try:
            saved = save(appointment, form)
        except PermissionDenied:
            # Recorded like any refusal; the screen itself was open to this doctor.
            records_selectors.deny(
                request.user,
                f"consultation_{name}",
                obj=appointment,
                patient=appointment.patient.user,
            )
            form.add_error(None, refused)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            if request.htmx:
                visit = saved if name == "summary" else None
                fresh = (
                    ConsultSummaryForm(initial={"summary": saved.summary, "end_call": True})
                    if name == "summary"
                    else form_class()
                )
                return _fragment(request, appointment, name, fresh, done=done, visit=visit)
            messages.success(request, done)
            return redirect("telemedicine:consult", public_id=appointment.public_id)
    if request.htmx:
        # htmx swaps only 2xx answers: the form comes back with its errors.
        visit = (
            selectors_consult.consultation_visit(request.user, appointment)
            if name == "summary"
            else None
        )
        return _fragment(request, appointment, name, form, visit=visit)
    context = _context(request, appointment, **{f"{name}_form": form})
    return render(request, f"{TEMPLATES}/consult.html", context, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def consult_note(request: HttpRequest, public_id: str) -> HttpResponse:
    def save(appointment: Any, form: ConsultNoteForm) -> Any:
        return services_consult.consultation_note_add(
            by=request.user,
            appointment=appointment,
            text=form.cleaned_data["text"],
            internal=form.internal,
        )

    return _action(
        request,
        public_id,
        name="note",
        form_class=ConsultNoteForm,
        save=save,
        done=_("Note saved."),
        refused=_("You cannot write in this patient's record."),
    )


@login_required
@require_http_methods(["GET", "POST"])
def consult_prescription(request: HttpRequest, public_id: str) -> HttpResponse:
    def save(appointment: Any, form: ConsultPrescriptionForm) -> Any:
        data = form.cleaned_data
        return services_consult.consultation_prescribe(
            by=request.user,
            appointment=appointment,
            medication=data["medication"],
            dosage=data["dosage"],
            instructions=data["instructions"],
            is_repeat=data["is_repeat"],
            repeats_allowed=data["repeats_allowed"] or 0,
            valid_until=data["valid_until"],
        )

    return _action(
        request,
        public_id,
        name="prescription",
        form_class=ConsultPrescriptionForm,
        save=save,
        done=_("The prescription is saved. The patient sees it under “My prescriptions”."),
        refused=_("You cannot prescribe for this patient."),
    )


@login_required
@require_http_methods(["GET", "POST"])
def consult_referral(request: HttpRequest, public_id: str) -> HttpResponse:
    def save(appointment: Any, form: ConsultReferralForm) -> Any:
        data = form.cleaned_data
        return services_consult.consultation_refer(
            by=request.user,
            appointment=appointment,
            title=data["title"],
            body=data["body"],
            release=data["release"],
        )

    return _action(
        request,
        public_id,
        name="referral",
        form_class=ConsultReferralForm,
        save=save,
        done=_("The referral is saved; its PDF is being prepared."),
        refused=_("You cannot issue documents for this patient."),
    )


@login_required
@require_http_methods(["GET", "POST"])
def consult_summary(request: HttpRequest, public_id: str) -> HttpResponse:
    def save(appointment: Any, form: ConsultSummaryForm) -> Any:
        return services_consult.consultation_summary_release(
            by=request.user,
            appointment=appointment,
            summary=form.cleaned_data["summary"],
            end_call=form.cleaned_data["end_call"],
        )

    return _action(
        request,
        public_id,
        name="summary",
        form_class=ConsultSummaryForm,
        save=save,
        done=_("The summary is released. The patient finds it under “My visits”."),
        refused=_("Only a doctor in charge of the patient can sign and release the visit."),
    )
