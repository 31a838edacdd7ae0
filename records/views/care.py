"""Pages of prescriptions and renewals, intake forms, vaccinations and care plans.

Patients: their prescriptions, a renewal request (pick a repeat medication, confirm the
dosage, pharmacy and notes), their requests with each state and its history, the intake
form of an upcoming appointment (save a draft, come back, send), vaccinations and care
plans. Clinicians: the renewal queue with each patient's medication history, one
request with its actions, a patient's care page, prescribing, recording a vaccination,
writing a care plan, and an appointment's intake form.

Thin views: parse with a form, call one selector (which checks access, answers 404 for
missing and forbidden alike and records the view) or one service (which checks who may
act and refuses bad input with a message, changing nothing), then render.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods

from accounts import policies
from records import selectors_care as selectors
from records import services_care as services
from records.forms_care import (
    CarePlanCreateForm,
    CarePlanForm,
    IntakeFormForm,
    PrescriptionForm,
    RenewalRejectForm,
    RenewalRequestForm,
    VaccinationForm,
)
from records.models import INTAKE_FIELDS, IntakeStatus, RenewalStatus
from records.presentation import local_time

# --- Presentation helpers ---------------------------------------------------------------------

# Each state in words and a badge (its glyph comes from CSS): never colour alone.
RENEWAL_BADGES = {
    RenewalStatus.SUBMITTED: "pending",
    RenewalStatus.UNDER_REVIEW: "info",
    RenewalStatus.APPROVED: "success",
    RenewalStatus.REJECTED: "danger",
    RenewalStatus.SENT_TO_PHARMACY: "info",
    RenewalStatus.READY: "success",
    RenewalStatus.COMPLETED: "neutral",
}


def _patient_explanation(status: str) -> str:
    return {
        RenewalStatus.SUBMITTED: _(
            "Your request has reached the clinic. A doctor will look at it."
        ),
        RenewalStatus.UNDER_REVIEW: _("A doctor is reviewing your request."),
        RenewalStatus.APPROVED: _(
            "Your doctor approved the renewal. It will be sent to the pharmacy or made "
            "ready to collect."
        ),
        RenewalStatus.REJECTED: _("Your doctor did not approve the renewal. The reason is below."),
        RenewalStatus.SENT_TO_PHARMACY: _("The prescription was sent to your pharmacy."),
        RenewalStatus.READY: _("The prescription is ready to collect at the clinic."),
        RenewalStatus.COMPLETED: _("Done."),
    }.get(status, "")


def _decorate_renewal(renewal: Any, *, viewer: Any) -> None:
    renewal.badge_variant = RENEWAL_BADGES.get(renewal.status, "neutral")
    renewal.submitted_text = local_time(renewal.submitted_at)
    renewal.decided_text = local_time(renewal.decided_at)
    renewal.explanation = _patient_explanation(renewal.status)
    prefetched = getattr(renewal, "_prefetched_objects_cache", {})
    events = list(renewal.events.all()) if "events" in prefetched else []
    for event in events:
        event.at_text = local_time(event.at)
        event.to_label = RenewalStatus(event.to_status).label
        event.badge_variant = RENEWAL_BADGES.get(event.to_status, "neutral")
        if event.by_id is None:
            event.who = _("The clinic")
        elif event.by_id == viewer.pk:
            event.who = _("You")
        else:
            event.who = event.by.display_name()
    renewal.history = events


def _decorate_prescription(p: Any) -> None:
    p.issued_text = local_time(p.issued_at, "j E Y")
    p.valid_text = formats.date_format(p.valid_until, "j E Y") if p.valid_until else ""
    p.repeats_text = (
        ngettext(
            "%(left)d of %(total)d renewal left",
            "%(left)d of %(total)d renewals left",
            p.repeats_left,
        )
        % {"left": p.repeats_left, "total": p.repeats_allowed}
        if p.is_repeat
        else _("Not a repeat prescription")
    )
    p.status_variant = {"active": "success", "completed": "neutral", "cancelled": "danger"}.get(
        p.status, "neutral"
    )
    p.choice_label = f"{p.medication} — {p.dosage} ({p.repeats_text})"
    for r in getattr(p, "renewal_list", []):
        r.badge_variant = RENEWAL_BADGES.get(r.status, "neutral")
        r.submitted_text = local_time(r.submitted_at, "j E Y")


def _appointment_when(appointment: Any) -> str:
    local = appointment.local_start()
    return f"{formats.date_format(local, 'l, j E Y, H:i')} ({appointment.location.time_zone})"


def _decorate_intake(item: Any) -> None:
    appointment = item.appointment
    appointment.when_text = _appointment_when(appointment)
    form = item.form
    if form is None or (form.status == IntakeStatus.DRAFT and form.is_empty):
        item.state_label, item.state_variant = _("Not started"), "warning"
    elif form.status == IntakeStatus.DRAFT:
        item.state_label, item.state_variant = _("Draft saved, not sent"), "pending"
    else:
        item.state_label, item.state_variant = _("Sent to the doctor"), "success"
    if form is not None:
        form.updated_text = local_time(form.updated_at)
        form.submitted_text = local_time(form.submitted_at)


def _apply_errors(form: Any, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


# --- Patient: prescriptions and renewals ------------------------------------------------------


@login_required
@require_GET
def my_prescriptions(request: HttpRequest) -> HttpResponse:
    prescriptions = selectors.my_prescriptions(request.user)
    for p in prescriptions:
        _decorate_prescription(p)
        if p.open_renewal is not None:
            _decorate_renewal(p.open_renewal, viewer=request.user)
    return render(request, "records/care/prescriptions.html", {"prescriptions": prescriptions})


@login_required
@require_http_methods(["GET", "POST"])
def renewal_new(request: HttpRequest) -> HttpResponse:
    choices = selectors.renewable_prescriptions(request.user)
    for p in choices:
        _decorate_prescription(p)
    chosen = request.GET.get("prescription", "")
    initial: dict[str, Any] = {}
    for p in choices:
        if str(p.public_id) == chosen or len(choices) == 1:
            initial = {"prescription": str(p.public_id), "confirmed_dosage": p.dosage}
    form = RenewalRequestForm(request.POST or None, prescriptions=choices, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                renewal = services.renewal_request_submit(
                    by=request.user,
                    prescription=form.chosen,
                    confirmed_dosage=form.cleaned_data["confirmed_dosage"],
                    pharmacy=form.cleaned_data["pharmacy"],
                    notes=form.cleaned_data["notes"],
                )
            except PermissionDenied:
                form.add_error(None, _("This prescription cannot be renewed from your account."))
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(
                    request, _("Your renewal request is sent. We will tell you when it changes.")
                )
                return redirect("records:care_renewal", public_id=renewal.public_id)
        status = 400
    return render(
        request,
        "records/care/renewal_new.html",
        {"form": form, "choices": choices},
        status=status,
    )


@login_required
@require_GET
def my_renewals(request: HttpRequest) -> HttpResponse:
    renewals = selectors.my_renewals(request.user)
    for r in renewals:
        _decorate_renewal(r, viewer=request.user)
    return render(request, "records/care/renewals.html", {"renewals": renewals})


@login_required
@require_GET
def renewal_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    renewal = selectors.renewal_get_for(request.user, public_id, audience="patient")
    _decorate_renewal(renewal, viewer=request.user)
    _decorate_prescription(renewal.prescription)
    return render(request, "records/care/renewal_detail.html", {"renewal": renewal})


# --- Patient: intake forms, vaccinations, care plans -------------------------------------------


@login_required
@require_GET
def intake_list(request: HttpRequest) -> HttpResponse:
    items = selectors.my_intake_forms(request.user)
    for item in items:
        _decorate_intake(item)
    return render(request, "records/care/intake_list.html", {"items": items})


@login_required
@require_http_methods(["GET", "POST"])
def intake_form(request: HttpRequest, public_id: str) -> HttpResponse:
    item = selectors.intake_get_for_patient(request.user, public_id)
    _decorate_intake(item)
    saved = item.form
    initial = {name: getattr(saved, name) for name in INTAKE_FIELDS} if saved else {}
    form = IntakeFormForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            save = services.intake_form_submit if form.submit else services.intake_form_save_draft
            try:
                save(by=request.user, appointment=item.appointment, **form.answers())
            except PermissionDenied:
                form.add_error(None, _("This form cannot be filled in from your account."))
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                if form.submit:
                    messages.success(request, _("Your form is sent to the doctor. Thank you."))
                else:
                    messages.success(
                        request,
                        _("Your answers are saved as a draft. You can come back and finish later."),
                    )
                return redirect("records:care_intake", public_id=item.appointment.public_id)
        status = 400
    context = {
        "item": item,
        "appointment": item.appointment,
        "saved": saved,
        "form": form,
        "editable": (saved is None or not saved.submitted),
    }
    return render(request, "records/care/intake_form.html", context, status=status)


@login_required
@require_GET
def my_vaccinations(request: HttpRequest) -> HttpResponse:
    rows = selectors.my_vaccinations(request.user)
    for v in rows:
        v.given_text = formats.date_format(v.given_on, "j E Y")
    return render(request, "records/care/vaccinations.html", {"vaccinations": rows})


def _decorate_plan(plan: Any) -> None:
    plan.start_text = formats.date_format(plan.start_date, "j E Y")
    plan.review_text = formats.date_format(plan.review_date, "j E Y") if plan.review_date else ""


@login_required
@require_GET
def my_care_plans(request: HttpRequest) -> HttpResponse:
    plans = selectors.my_care_plans(request.user)
    for plan in plans:
        _decorate_plan(plan)
    return render(request, "records/care/care_plans.html", {"plans": plans})


# --- Staff: renewal queue and one request -------------------------------------------------------


@login_required
@require_GET
def renewal_queue(request: HttpRequest) -> HttpResponse:
    queue = selectors.renewal_queue(request.user)
    for r in [*queue.to_review, *queue.to_dispatch]:
        _decorate_renewal(r, viewer=request.user)
        r.history_of_patient = queue.histories[r.patient_id].prescriptions
    for history in queue.histories.values():
        for p in history.prescriptions:
            _decorate_prescription(p)
    return render(request, "records/care/staff_queue.html", {"queue": queue})


ACTION_LABELS = {
    "start_review": gettext_lazy("Start review"),
    "approve": gettext_lazy("Approve renewal"),
    "mark_sent": gettext_lazy("Mark as sent to the pharmacy"),
    "mark_ready": gettext_lazy("Mark as ready to collect"),
    "complete": gettext_lazy("Mark as completed"),
}
ACTION_DONE = {
    "start_review": gettext_lazy("The request is under review."),
    "approve": gettext_lazy("The renewal is approved. The patient is told."),
    "reject": gettext_lazy("The request is rejected. The patient sees your reason."),
    "mark_sent": gettext_lazy("Marked as sent to the pharmacy."),
    "mark_ready": gettext_lazy("Marked as ready to collect."),
    "complete": gettext_lazy("The request is completed."),
}


@login_required
@require_http_methods(["GET", "POST"])
def staff_renewal(request: HttpRequest, public_id: str) -> HttpResponse:
    renewal = selectors.renewal_get_for(request.user, public_id, audience="staff")
    reject_form = RenewalRejectForm(
        request.POST if request.POST.get("action") == "reject" else None
    )
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "")
        service = services.RENEWAL_ACTIONS.get(action)
        if service is None:
            messages.error(request, _("Unknown action."))
            return redirect("records:care_staff_renewal", public_id=renewal.public_id)
        kwargs: dict[str, Any] = {}
        if action == "reject":
            if not reject_form.is_valid():
                service = None
            else:
                kwargs["reason"] = reject_form.cleaned_data["reason"]
        if service is not None:
            try:
                service(by=request.user, renewal=renewal, **kwargs)
            except PermissionDenied:
                messages.error(request, _("Only a doctor in charge of this patient can do this."))
                return redirect("records:care_staff_renewal", public_id=renewal.public_id)
            except ValidationError as exc:
                if action == "reject" and hasattr(exc, "error_dict"):
                    _apply_errors(reject_form, exc)
                else:
                    messages.error(request, " ".join(exc.messages))
                    return redirect("records:care_staff_renewal", public_id=renewal.public_id)
            else:
                messages.success(request, str(ACTION_DONE[action]))
                return redirect("records:care_staff_renewal", public_id=renewal.public_id)
        status = 400
    _decorate_renewal(renewal, viewer=request.user)
    _decorate_prescription(renewal.prescription)
    history = renewal.medication_history
    for p in history:
        _decorate_prescription(p)
    may_act = policies.can_review_renewal(request.user, renewal)
    actions = services.renewal_actions_from(renewal.status) if may_act else []
    context = {
        "renewal": renewal,
        "profile": renewal.patient,
        "history": history,
        "buttons": [(a, ACTION_LABELS[a]) for a in actions if a != "reject"],
        "can_reject": "reject" in actions,
        "reject_form": reject_form,
        "may_act": may_act,
    }
    return render(request, "records/care/staff_renewal.html", context, status=status)


# --- Staff: a patient's care page and writing ---------------------------------------------------


@login_required
@require_GET
def patient_care(request: HttpRequest, profile_id: int) -> HttpResponse:
    care = selectors.patient_care(request.user, profile_id)
    for p in care.prescriptions:
        _decorate_prescription(p)
    for r in care.renewals:
        _decorate_renewal(r, viewer=request.user)
    for v in care.vaccinations:
        v.given_text = formats.date_format(v.given_on, "j E Y")
    for plan in care.care_plans:
        _decorate_plan(plan)
    for item in care.intake:
        _decorate_intake(item)
    user, profile = request.user, care.profile
    context = {
        "care": care,
        "profile": profile,
        "can_prescribe": policies.can_prescribe(user, profile),
        "can_vaccinate": policies.can_record_vaccination(user, profile),
        "can_plan": policies.can_manage_care_plan(user, profile),
    }
    return render(request, "records/care/staff_patient.html", context)


def _write_page(
    request: HttpRequest,
    *,
    profile_id: int,
    what: str,
    allowed: Any,
    form_class: Any,
    save: Any,
    template: str,
    done: str,
) -> HttpResponse:
    profile = selectors.patient_for_care_writing(request.user, profile_id, what, allowed)
    form = form_class(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                save(profile, form.cleaned_data)
            except PermissionDenied:
                form.add_error(None, _("You cannot do this for this patient."))
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(request, done)
                return redirect("records:care_patient", profile_id=profile.pk)
        status = 400
    return render(request, template, {"profile": profile, "form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def prescription_new(request: HttpRequest, profile_id: int) -> HttpResponse:
    def save(profile: Any, data: dict) -> None:
        services.prescription_create(
            by=request.user,
            patient=profile,
            medication=data["medication"],
            dosage=data["dosage"],
            instructions=data["instructions"],
            is_repeat=data["is_repeat"],
            repeats_allowed=data["repeats_allowed"] or 0,
            valid_until=data["valid_until"],
        )

    return _write_page(
        request,
        profile_id=profile_id,
        what="prescription_new",
        allowed=policies.can_prescribe,
        form_class=PrescriptionForm,
        save=save,
        template="records/care/staff_prescription_form.html",
        done=_("The prescription is saved."),
    )


@login_required
@require_http_methods(["GET", "POST"])
def vaccination_new(request: HttpRequest, profile_id: int) -> HttpResponse:
    def save(profile: Any, data: dict) -> None:
        services.vaccination_record(
            by=request.user,
            patient=profile,
            vaccine=data["vaccine"],
            given_on=data["given_on"],
            dose_number=data["dose_number"],
            lot=data["lot"],
            notes=data["notes"],
        )

    return _write_page(
        request,
        profile_id=profile_id,
        what="vaccination_new",
        allowed=policies.can_record_vaccination,
        form_class=VaccinationForm,
        save=save,
        template="records/care/staff_vaccination_form.html",
        done=_("The vaccination is recorded."),
    )


@login_required
@require_http_methods(["GET", "POST"])
def care_plan_new(request: HttpRequest, profile_id: int) -> HttpResponse:
    def save(profile: Any, data: dict) -> None:
        services.care_plan_create(
            by=request.user,
            patient=profile,
            condition=data["condition"],
            instructions=data["instructions"],
            start_date=data["start_date"],
            review_date=data["review_date"],
        )

    return _write_page(
        request,
        profile_id=profile_id,
        what="care_plan_new",
        allowed=policies.can_manage_care_plan,
        form_class=CarePlanCreateForm,
        save=save,
        template="records/care/staff_care_plan_form.html",
        done=_("The care plan is saved. The patient can read it in the portal."),
    )


@login_required
@require_http_methods(["GET", "POST"])
def care_plan_edit(request: HttpRequest, public_id: str) -> HttpResponse:
    plan = selectors.care_plan_get_for_edit(request.user, public_id)
    initial = {
        "condition": plan.condition,
        "instructions": plan.instructions,
        "start_date": plan.start_date,
        "review_date": plan.review_date,
        "active": plan.active,
    }
    form = CarePlanForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.care_plan_update(
                    by=request.user,
                    plan=plan,
                    condition=data["condition"],
                    instructions=data["instructions"],
                    start_date=data["start_date"],
                    review_date=data["review_date"],
                    active=data["active"],
                )
            except PermissionDenied:
                form.add_error(None, _("You cannot change this care plan."))
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(request, _("The care plan is saved."))
                return redirect("records:care_patient", profile_id=plan.patient_id)
        status = 400
    context = {"profile": plan.patient, "form": form, "plan": plan}
    return render(request, "records/care/staff_care_plan_form.html", context, status=status)


@login_required
@require_GET
def staff_intake(request: HttpRequest, public_id: str) -> HttpResponse:
    item = selectors.intake_get_for_staff(request.user, public_id)
    _decorate_intake(item)
    form = item.form
    answers = []
    if form is not None and form.submitted:
        labels = IntakeFormForm.base_fields
        answers = [(labels[name].label, getattr(form, name)) for name in INTAKE_FIELDS]
    context = {
        "item": item,
        "appointment": item.appointment,
        "profile": item.appointment.patient,
        "answers": answers,
    }
    return render(request, "records/care/staff_intake.html", context)
