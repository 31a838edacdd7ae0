"""Staff schedule pages: a doctor's day and week, today's lists, templates and
exceptions, booking, moving, cancelling and checking in for patients, capacity
overrides and review moderation. Thin: parse with a form, call one selector or service,
render. Every refusal is a recorded 404 (scheduling.selectors.staff.deny)."""

from __future__ import annotations

import uuid
from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts import selectors as account_selectors
from accounts.models import Role
from scheduling import hooks, schedule, services
from scheduling.forms_staff import (
    BookingForm,
    CancelForm,
    CapacityForm,
    ExceptionForm,
    PatientFindForm,
    RescheduleForm,
    ReviewDecisionForm,
    StatusForm,
    WorkingHoursForm,
    format_breaks,
    parse_day,
)
from scheduling.models import AppointmentSource, AppointmentStatus
from scheduling.selectors import staff as selectors


def _url_name(request: HttpRequest) -> str:
    match = request.resolver_match
    return match.view_name if match else ""


def _staff_only(request: HttpRequest) -> None:
    """Patients (and anyone without a staff schedule role) never reach these pages."""
    if not selectors.may_use_staff_schedule(request.user):
        raise selectors.deny(request.user, "page", url_name=_url_name(request))


def _clinic_only(request: HttpRequest) -> None:
    if not selectors.may_act_for_patients(request.user):
        raise selectors.deny(request.user, "page", url_name=_url_name(request))


def _apply_errors(form, exc: ValidationError) -> None:  # noqa: ANN001
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _doctor_context(request: HttpRequest, doctor, tab: str) -> dict:  # noqa: ANN001
    return {
        "doctor": doctor,
        "doctor_name": doctor.display_name(),
        "tab": tab,
        "own": doctor.pk == request.user.pk,
        "can_manage": selectors.may_manage_calendar(request.user, doctor),
        "can_book": selectors.may_act_for_patients(request.user),
    }


def _day_url(doctor_id: int, day: date) -> str:
    return f"{reverse('scheduling:staff_day', args=[doctor_id])}?date={day.isoformat()}"


def _appointment_day(appointment) -> date:  # noqa: ANN001
    tz_name = selectors.doctor_time_zone(appointment.doctor)
    return selectors.local_day_of(appointment.starts_at, tz_name)


# --- Today and the doctor picker ---------------------------------------------------------


@login_required
def schedule_home(request: HttpRequest) -> HttpResponse:
    """Doctors: their day. Nurses: today for their department's doctors. Reception and
    admins: the doctors to choose from. As an htmx fragment it fills the workplace card."""
    _staff_only(request)
    user = request.user
    fragment = bool(getattr(request, "htmx", False))
    context: dict = {"fragment": fragment, "show_doctor": user.role == Role.NURSE}
    if user.role == Role.DOCTOR:
        if not fragment:
            return redirect("scheduling:staff_day", doctor_id=user.pk)
        context["day"] = selectors.day_list(user, user)
    elif user.role == Role.NURSE:
        context["day"] = selectors.department_today(user)
    else:
        context["doctors"] = list(selectors.doctors_visible_to(user))
        context["pending_reviews"] = selectors.reviews_pending(user).count()
    template = "scheduling/staff/_today.html" if fragment else "scheduling/staff/home.html"
    return render(request, template, context)


# --- A doctor's day and week ----------------------------------------------------------


@login_required
def day(request: HttpRequest, doctor_id: int) -> HttpResponse:
    doctor = selectors.doctor_get_for(request.user, doctor_id)
    listing = selectors.day_list(request.user, doctor, parse_day(request.GET.get("date")))
    context = _doctor_context(request, doctor, "day") | {"day": listing}
    return render(request, "scheduling/staff/day.html", context)


@login_required
def week(request: HttpRequest, doctor_id: int) -> HttpResponse:
    doctor = selectors.doctor_get_for(request.user, doctor_id)
    grid = selectors.week_grid(request.user, doctor, parse_day(request.GET.get("start")))
    context = _doctor_context(request, doctor, "week") | {"grid": grid}
    return render(request, "scheduling/staff/week.html", context)


# --- Weekly templates ------------------------------------------------------------------------


def _save_hours(request: HttpRequest, doctor, form: WorkingHoursForm, hours=None) -> bool:  # noqa: ANN001
    data = form.cleaned_data
    try:
        schedule.working_hours_set(
            by=request.user,
            doctor=doctor,
            location=data["location"],
            weekday=data["weekday"],
            start=data["start"],
            end=data["end"],
            slot_minutes=data["slot_minutes"],
            breaks=data["breaks"],
            valid_from=data.get("valid_from"),
            valid_until=data.get("valid_until"),
            working_hours=hours,
        )
    except ValidationError as exc:
        _apply_errors(form, exc)
        return False
    return True


@login_required
@require_http_methods(["GET", "POST"])
def hours(request: HttpRequest, doctor_id: int) -> HttpResponse:
    doctor = selectors.doctor_get_for(request.user, doctor_id, manage=True)
    location = getattr(getattr(doctor, "staff_profile", None), "location", None)
    form = WorkingHoursForm(request.POST or None, initial={"location": location})
    if request.method == "POST" and form.is_valid() and _save_hours(request, doctor, form):
        messages.success(request, _("Working hours saved."))
        return redirect("scheduling:staff_hours", doctor_id=doctor.pk)
    context = _doctor_context(request, doctor, "hours") | {
        "form": form,
        "templates": selectors.working_hours_for(doctor),
    }
    return render(request, "scheduling/staff/hours.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def hours_edit(request: HttpRequest, doctor_id: int, hours_id: int) -> HttpResponse:
    doctor = selectors.doctor_get_for(request.user, doctor_id, manage=True)
    current = selectors.working_hours_get_for(request.user, doctor, hours_id)
    initial = {
        "location": current.location,
        "weekday": current.weekday,
        "start": current.start,
        "end": current.end,
        "slot_minutes": current.slot_minutes,
        "breaks": format_breaks(current.breaks.all()),
        "valid_from": current.valid_from,
        "valid_until": current.valid_until,
    }
    form = WorkingHoursForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid() and _save_hours(request, doctor, form, current):
        messages.success(request, _("Working hours saved."))
        return redirect("scheduling:staff_hours", doctor_id=doctor.pk)
    context = _doctor_context(request, doctor, "hours") | {"form": form, "current": current}
    return render(request, "scheduling/staff/hours_edit.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def hours_delete(request: HttpRequest, doctor_id: int, hours_id: int) -> HttpResponse:
    doctor = selectors.doctor_get_for(request.user, doctor_id, manage=True)
    current = selectors.working_hours_get_for(request.user, doctor, hours_id)
    if request.method == "POST":
        schedule.working_hours_delete(by=request.user, working_hours=current)
        messages.success(request, _("Working hours removed. Booked appointments stay."))
        return redirect("scheduling:staff_hours", doctor_id=doctor.pk)
    return redirect("scheduling:staff_hours_edit", doctor_id=doctor.pk, hours_id=current.pk)


# --- Exceptions: time off and extra hours --------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def exceptions(request: HttpRequest, doctor_id: int) -> HttpResponse:
    doctor = selectors.doctor_get_for(request.user, doctor_id, manage=True)
    may_cancel = selectors.may_act_for_patients(request.user)
    form = ExceptionForm(request.POST or None, may_cancel=may_cancel)
    affected: list = []
    tz_name = selectors.doctor_time_zone(doctor)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        location = data.get("location")
        starts_at, ends_at = form.period(location.time_zone if location else tz_name)
        try:
            schedule.schedule_exception_add(
                by=request.user,
                doctor=doctor,
                kind=data["kind"],
                starts_at=starts_at,
                ends_at=ends_at,
                location=location,
                slot_minutes=data.get("slot_minutes") or 30,
                reason=data.get("reason", ""),
                cancel_affected=bool(data.get("cancel_affected")),
            )
        except schedule.AppointmentsAffected as exc:
            affected = [selectors.appointment_row(request.user, a) for a in exc.appointments]
            form.add_error(None, exc.messages)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("The change to the schedule is saved."))
            return redirect("scheduling:staff_exceptions", doctor_id=doctor.pk)
    context = _doctor_context(request, doctor, "exceptions") | {
        "form": form,
        "affected": affected,
        "may_cancel": may_cancel,
        "exceptions": selectors.exceptions_for(doctor),
        "doctor_tz": tz_name,
        "doctor_zone": selectors.zone_label(tz_name),
    }
    return render(
        request, "scheduling/staff/exceptions.html", context, status=409 if affected else 200
    )


@login_required
@require_http_methods(["GET", "POST"])
def exception_delete(request: HttpRequest, doctor_id: int, exception_id: int) -> HttpResponse:
    doctor = selectors.doctor_get_for(request.user, doctor_id, manage=True)
    exception = selectors.exception_get_for(request.user, doctor, exception_id)
    if request.method == "POST":
        schedule.schedule_exception_remove(by=request.user, exception=exception)
        messages.success(request, _("The change to the schedule is removed."))
    return redirect("scheduling:staff_exceptions", doctor_id=doctor.pk)


# --- Capacity ------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def capacity(request: HttpRequest, doctor_id: int) -> HttpResponse:
    _clinic_only(request)
    doctor = selectors.doctor_get_for(request.user, doctor_id, manage=True)
    tz_name = selectors.doctor_time_zone(doctor)
    form = CapacityForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        location = data.get("location")
        starts_at, ends_at = form.period(location.time_zone if location else tz_name)
        try:
            services.capacity_override_set(
                by=request.user,
                doctor=doctor,
                starts_at=starts_at,
                ends_at=ends_at,
                capacity=data["capacity"],
                reason=data["reason"],
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("Capacity saved."))
            return redirect("scheduling:staff_capacity", doctor_id=doctor.pk)
    context = _doctor_context(request, doctor, "capacity") | {
        "form": form,
        "overrides": selectors.capacity_overrides_for(doctor),
        "doctor_tz": tz_name,
        "doctor_zone": selectors.zone_label(tz_name),
    }
    return render(request, "scheduling/staff/capacity.html", context)


# --- Booking for a patient ------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def book(request: HttpRequest, doctor_id: int) -> HttpResponse:
    """Find the patient by an exact document or email (in the form body, never the URL)."""
    _clinic_only(request)
    doctor = selectors.doctor_get_for(request.user, doctor_id, manage=True)
    form = PatientFindForm(request.POST or None)
    not_found = False
    if request.method == "POST" and form.is_valid():
        found = account_selectors.patient_find(request.user, form.cleaned_data["query"])
        if found is not None:
            return redirect(
                "scheduling:staff_book_patient", doctor_id=doctor.pk, profile_id=found.pk
            )
        not_found = True
    context = _doctor_context(request, doctor, "book") | {"form": form, "not_found": not_found}
    return render(request, "scheduling/staff/book.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def book_patient(request: HttpRequest, doctor_id: int, profile_id: int) -> HttpResponse:
    profile = selectors.booking_patient_get_for(request.user, profile_id)
    doctor = selectors.doctor_get_for(request.user, doctor_id, manage=True)
    ctypes = selectors.consultation_types_for(doctor)
    tz_name = selectors.doctor_time_zone(doctor)
    initial = {"date": selectors.local_today(tz_name), "consultation_type": ctypes.first()}
    if request.method == "POST":
        data = request.POST
    else:  # a link may name only the day (or nothing): the rest takes the defaults
        data = request.GET.copy()
        if data and not data.get("consultation_type") and initial["consultation_type"]:
            data["consultation_type"] = str(initial["consultation_type"].pk)
        if data and not data.get("date"):
            data["date"] = initial["date"].isoformat()
    probe = BookingForm(data or None, consultation_types=ctypes, initial=initial)
    times: list = []
    taken: list = []
    status = 200
    chosen_type = chosen_day = None
    if data:
        probe.is_valid()  # only the consultation type and the day matter here
        chosen_type = probe.cleaned_data.get("consultation_type")
        chosen_day = probe.cleaned_data.get("date")
        if chosen_day is None:
            chosen_type = None
    else:
        chosen_type, chosen_day = initial["consultation_type"], initial["date"]
    if chosen_type is not None:
        times = selectors.free_times(doctor, chosen_type, chosen_day)
    posted = request.method == "POST"
    form = BookingForm(
        data or None,
        consultation_types=ctypes,
        times=times,
        initial=initial,
        require_start=posted,
    )
    if request.method == "POST" and form.is_valid():
        start = form.cleaned_data["start"]
        if start is None:
            form.add_error("start", _("Choose a time."))
        else:
            try:
                appointment = services.appointment_book_slot(
                    by=request.user,
                    patient=profile,
                    doctor=doctor,
                    consultation_type=chosen_type,
                    starts_at=start,
                    source=AppointmentSource.RECEPTION,
                )
            except services.SlotTaken as exc:
                taken = selectors.alternatives(exc.alternatives)
                form = BookingForm(
                    data,
                    consultation_types=ctypes,
                    times=taken or times,
                    initial=initial,
                    require_start=True,
                )
                form.is_valid()
                status = 409
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(
                    request,
                    _("Booked: %(patient)s, %(when)s.")
                    % {
                        "patient": profile.full_name(),
                        "when": selectors.describe_start(appointment),
                    },
                )
                return redirect(_day_url(doctor.pk, _appointment_day(appointment)))
    context = _doctor_context(request, doctor, "book") | {
        "form": form,
        "profile": profile,
        "times": times,
        "taken": taken,
        "chosen_type": chosen_type,
        "chosen_day": chosen_day,
        "doctor_zone": selectors.zone_label(tz_name),
        "no_types": not ctypes.exists(),
    }
    return render(request, "scheduling/staff/book_patient.html", context, status=status)


# --- One appointment: status, cancel, move -------------------------------------------------


@login_required
def appointment(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    found = selectors.appointment_get_for(request.user, public_id)
    context = {
        "appointment": found,
        "row": selectors.appointment_row(request.user, found),
        "history": selectors.appointment_history(found),
        "can_manage": selectors.may_act_for_patients(request.user),
        "cancel_form": CancelForm(),
        "quote": services.cancellation_quote(found, by=request.user),
        "day_url": _day_url(found.doctor_id, _appointment_day(found)),
        "sections": hooks.appointment_page_sections.collect(
            user=request.user, appointment=found, audience="staff"
        ),
    }
    return render(request, "scheduling/staff/appointment.html", context)


def _back(request: HttpRequest, found) -> HttpResponse:  # noqa: ANN001
    if request.POST.get("back") == "day":
        return redirect(_day_url(found.doctor_id, _appointment_day(found)))
    return redirect("scheduling:staff_appointment", public_id=found.public_id)


@login_required
@require_http_methods(["GET", "POST"])
def appointment_status(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    found = selectors.appointment_get_for(request.user, public_id, purpose="status")
    if request.method != "POST":
        return redirect("scheduling:staff_appointment", public_id=found.public_id)
    form = StatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("That request could not be understood. Nothing was changed."))
        return _back(request, found)
    status = form.cleaned_data["status"]
    try:
        services.appointment_set_status(by=request.user, appointment=found, status=status)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except PermissionDenied:
        messages.error(request, _("You cannot make this change. Nothing was changed."))
    else:
        messages.success(
            request,
            _("%(patient)s: %(status)s.")
            % {"patient": found.patient.full_name(), "status": AppointmentStatus(status).label},
        )
    return _back(request, found)


@login_required
@require_http_methods(["GET", "POST"])
def appointment_cancel(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    found = selectors.appointment_get_for(request.user, public_id, purpose="manage")
    if request.method != "POST":
        return redirect("scheduling:staff_appointment", public_id=found.public_id)
    form = CancelForm(request.POST)
    if form.is_valid():
        try:
            services.appointment_cancel(
                by=request.user, appointment=found, reason=form.cleaned_data["reason"]
            )
        except (ValidationError, PermissionDenied) as exc:
            text = " ".join(getattr(exc, "messages", [])) or _("Nothing was changed.")
            messages.error(request, text)
        else:
            messages.success(request, _("The appointment is cancelled, free of charge."))
            return redirect(_day_url(found.doctor_id, _appointment_day(found)))
        return redirect("scheduling:staff_appointment", public_id=found.public_id)
    context = {
        "appointment": found,
        "row": selectors.appointment_row(request.user, found),
        "history": selectors.appointment_history(found),
        "can_manage": True,
        "cancel_form": form,
        "quote": services.cancellation_quote(found, by=request.user),
        "day_url": _day_url(found.doctor_id, _appointment_day(found)),
    }
    return render(request, "scheduling/staff/appointment.html", context, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def appointment_reschedule(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    found = selectors.appointment_get_for(request.user, public_id, purpose="manage")
    doctor = found.doctor
    tz_name = selectors.doctor_time_zone(doctor)
    data = request.POST if request.method == "POST" else request.GET
    initial = {"date": _appointment_day(found)}
    probe = RescheduleForm(data or None, initial=initial)
    chosen_day = None
    if data:
        probe.is_valid()  # only the day matters here
        chosen_day = probe.cleaned_data.get("date")
    chosen_day = chosen_day or initial["date"]
    times = selectors.free_times(doctor, found.consultation_type, chosen_day)
    form = RescheduleForm(
        data or None, times=times, initial=initial, require_start=request.method == "POST"
    )
    taken: list = []
    status = 200
    if request.method == "POST" and form.is_valid():
        start = form.cleaned_data["start"]
        if start is None:
            form.add_error("start", _("Choose a time."))
        else:
            try:
                moved = services.appointment_reschedule(
                    by=request.user, appointment=found, new_start=start
                )
            except services.SlotTaken as exc:
                taken = selectors.alternatives(exc.alternatives)
                form = RescheduleForm(
                    data, times=taken or times, initial=initial, require_start=True
                )
                form.is_valid()
                status = 409
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(
                    request,
                    _("Moved to %(when)s.") % {"when": selectors.describe_start(moved)},
                )
                return redirect("scheduling:staff_appointment", public_id=moved.public_id)
    context = {
        "appointment": found,
        "row": selectors.appointment_row(request.user, found),
        "form": form,
        "times": times,
        "taken": taken,
        "doctor_zone": selectors.zone_label(tz_name),
    }
    return render(request, "scheduling/staff/reschedule.html", context, status=status)


# --- Reviews -------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def reviews(request: HttpRequest) -> HttpResponse:
    _clinic_only(request)
    if request.method == "POST":
        form = ReviewDecisionForm(request.POST)
        if form.is_valid():
            review = selectors.review_get_for(request.user, form.cleaned_data["review"])
            approve = form.cleaned_data["decision"] == "approve"
            services.review_moderate(by=request.user, review=review, approve=approve)
            messages.success(request, _("Review approved.") if approve else _("Review rejected."))
        else:
            messages.error(request, _("That request could not be understood. Nothing was changed."))
        return redirect("scheduling:staff_reviews")
    return render(
        request,
        "scheduling/staff/reviews.html",
        {"reviews": selectors.reviews_pending(request.user)},
    )
