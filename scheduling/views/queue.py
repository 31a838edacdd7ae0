"""Live queue and waitlist pages: the patient's live status, reception's queue desk, the
waiting-room display (numbers only, no sign-in) and the patient's waitlist with offers.

Thin views: parse with a form, call one selector or service, render. Live parts are
htmx partials polled every 10 s; a poll carries the version it shows (`v`) and gets
204 No Content when nothing changed, so screen readers hear only real changes and
nothing is re-rendered for nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, time
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from accounts import selectors as account_selectors
from accounts.models import Location, PatientProfile, Role, User
from accounts.validators import validate_snils
from audit.models import AuditAction
from audit.services import audit_record
from scheduling import queue as queue_services
from scheduling import waitlist as waitlist_services
from scheduling.models import ConsultationType
from scheduling.selectors import queue as selectors

POLL_SECONDS = 10


def _denied(request: HttpRequest) -> Http404:
    """A page the user's role may not open: recorded, and answered like a missing page."""
    match = request.resolver_match
    audit_record(
        actor=request.user,
        action=AuditAction.DENIED,
        object_type="page",
        detail={"url_name": match.view_name if match else ""},
    )
    return Http404()


def _own_profile(request: HttpRequest, *, record_view: bool = True) -> PatientProfile:
    user = request.user
    if user.role != Role.PATIENT or not hasattr(user, "patient_profile"):
        raise _denied(request)
    profile = user.patient_profile
    if record_view and request.method == "GET":
        match = request.resolver_match
        audit_record(
            actor=user,
            action=AuditAction.VIEW,
            obj=profile,
            patient=user,
            detail={"page": match.view_name if match else ""},
        )
    return profile


def _version(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _unchanged(request: HttpRequest, version: str) -> bool:
    return request.htmx and request.GET.get("v") == version


def _apply_errors(form: forms.Form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


# --- Forms ----------------------------------------------------------------------------------


class DoctorChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        profile = getattr(obj, "staff_profile", None)
        return profile.full_name if profile is not None else str(obj)


class WalkInForm(forms.Form):
    doctor = DoctorChoiceField(
        label=gettext_lazy("Doctor"),
        queryset=User.objects.none(),
        required=False,
        empty_label=gettext_lazy("Any doctor (general queue)"),
    )
    snils = forms.CharField(
        label=gettext_lazy("Patient's SNILS"),
        help_text=gettext_lazy(
            "To show the patient their place in the queue on the portal. Leave empty for "
            "an anonymous ticket."
        ),
        max_length=14,
        required=False,
        validators=[validate_snils],
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )

    def __init__(self, *args: object, location, **kwargs: object) -> None:  # noqa: ANN001
        super().__init__(*args, **kwargs)
        self.fields["doctor"].queryset = selectors.queue_doctors_at(location)


class ConsultationChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ConsultationType) -> str:
        return f"{obj.name} — {obj.specialty.name}"


class WaitlistJoinForm(forms.Form):
    consultation_type = ConsultationChoiceField(
        label=gettext_lazy("Consultation"),
        queryset=ConsultationType.objects.filter(active=True).select_related("specialty"),
    )
    doctor = DoctorChoiceField(
        label=gettext_lazy("Doctor"),
        queryset=User.objects.filter(role=Role.DOCTOR, is_active=True)
        .select_related("staff_profile")
        .order_by("staff_profile__full_name"),
        required=False,
        empty_label=gettext_lazy("Any doctor of this specialty"),
    )
    wanted_before = forms.DateField(
        label=gettext_lazy("I would like a visit before"),
        help_text=gettext_lazy("We offer you a freed slot that starts before this date."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_wanted_before(self) -> datetime:
        day = self.cleaned_data["wanted_before"]
        return datetime.combine(day, time.min, tzinfo=ZoneInfo(settings.CLINIC_TIME_ZONE))


# --- Patient: live status -------------------------------------------------------------------


def _patient_status_context(request: HttpRequest) -> dict:
    items = selectors.queue_state_for_patient(request.user)
    version = _version(*(item.summary for item in items), *(item.ahead for item in items))
    return {"items": items, "version": version, "poll_seconds": POLL_SECONDS}


@login_required
@require_GET
def queue_me(request: HttpRequest) -> HttpResponse:
    _own_profile(request)
    return render(request, "scheduling/queue/me.html", _patient_status_context(request))


@login_required
@require_GET
def queue_me_status(request: HttpRequest) -> HttpResponse:
    """The live part of the patient's page; other patient pages may include it with
    hx-get + hx-trigger="load". Polls are not audited (the page load is)."""
    _own_profile(request, record_view=False)
    context = _patient_status_context(request)
    if _unchanged(request, context["version"]):
        return HttpResponse(status=204)
    return render(request, "scheduling/queue/_me_status.html", context)


# --- Staff: the queue desk ------------------------------------------------------------------


def _is_queue_staff(user: User) -> bool:
    return queue_services.can_run_queue(user) or user.role == Role.DOCTOR


@login_required
@require_GET
def queue_staff_home(request: HttpRequest) -> HttpResponse:
    """The staff member's own location's queue, or a choice of locations."""
    if not _is_queue_staff(request.user):
        raise _denied(request)
    profile = getattr(request.user, "staff_profile", None)
    if profile is not None and profile.location_id:
        return redirect("scheduling:queue_staff", code=profile.location.code)
    locations = Location.objects.order_by("name")
    return render(request, "scheduling/queue/staff_home.html", {"locations": locations})


def _staff_list_context(request: HttpRequest, location: Location) -> dict:
    tickets = list(selectors.queue_tickets_for_staff(request.user, location))
    version = _version(*((t.pk, t.status) for t in tickets))
    return {
        "location": location,
        "tickets": tickets,
        "version": version,
        "poll_seconds": POLL_SECONDS,
        "can_run": queue_services.can_run_queue(request.user, location=location),
    }


@login_required
@require_http_methods(["GET", "POST"])
def queue_staff(request: HttpRequest, code: str) -> HttpResponse:
    location = selectors.queue_location_get_for_staff(request.user, code)
    can_run = queue_services.can_run_queue(request.user, location=location)
    form = WalkInForm(request.POST or None, location=location) if can_run else None
    if request.method == "POST":
        if form is None:
            raise _denied(request)
        if form.is_valid():
            patient = None
            snils = form.cleaned_data["snils"]
            if snils:
                patient = account_selectors.patient_find(request.user, snils)
                if patient is None:
                    form.add_error("snils", _("No patient has exactly this SNILS."))
            if not form.errors:
                try:
                    ticket = queue_services.queue_ticket_issue(
                        by=request.user,
                        location=location,
                        doctor=form.cleaned_data["doctor"],
                        patient=patient,
                    )
                except ValidationError as exc:
                    _apply_errors(form, exc)
                else:
                    messages.success(
                        request, _("Ticket number %(number)s issued.") % {"number": ticket.number}
                    )
                    return redirect("scheduling:queue_staff", code=location.code)
    else:
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW,
            object_type="scheduling.queue",
            object_id=location.code,
            detail={"page": "queue_staff"},
        )
    context = _staff_list_context(request, location)
    context.update(
        {
            "form": form,
            "bookings": selectors.queue_bookings_to_check_in(request.user, location),
            "today": queue_services.service_date_for(location),
        }
    )
    return render(request, "scheduling/queue/staff.html", context)


@login_required
@require_GET
def queue_staff_list(request: HttpRequest, code: str) -> HttpResponse:
    location = selectors.queue_location_get_for_staff(request.user, code)
    context = _staff_list_context(request, location)
    if _unchanged(request, context["version"]):
        return HttpResponse(status=204)
    return render(request, "scheduling/queue/_staff_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def queue_check_in(request: HttpRequest, code: str, public_id) -> HttpResponse:  # noqa: ANN001
    appointment = selectors.queue_appointment_for_check_in(request.user, code, public_id)
    location = appointment.location
    if request.method == "POST":
        try:
            ticket = queue_services.queue_check_in(by=request.user, appointment=appointment)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        except PermissionDenied as exc:
            raise _denied(request) from exc
        else:
            messages.success(
                request,
                _("Checked in: ticket number %(number)s.") % {"number": ticket.number},
            )
    return redirect("scheduling:queue_staff", code=location.code)


@login_required
@require_http_methods(["GET", "POST"])
def queue_ticket_action(request: HttpRequest, ticket_id: int, action: str) -> HttpResponse:
    ticket = selectors.queue_ticket_get_for(request.user, ticket_id)
    service = queue_services.TICKET_ACTIONS.get(action)
    if service is None:
        raise Http404
    if request.method == "POST":
        try:
            ticket = service(by=request.user, ticket=ticket)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        except PermissionDenied as exc:
            raise _denied(request) from exc
        else:
            messages.success(
                request,
                _("Ticket number %(number)s: %(status)s.")
                % {"number": ticket.number, "status": ticket.get_status_display()},
            )
    return redirect("scheduling:queue_staff", code=ticket.location.code)


# --- Public display: numbers only -------------------------------------------------------------


def _display_context(code: str) -> dict:
    location = selectors.queue_display_location(code)
    board = selectors.queue_display_board(location)
    return {
        "location": location,
        "board": board,
        "version": _version(board.called, board.in_service, board.waiting),
        "poll_seconds": POLL_SECONDS,
    }


@require_GET
def queue_display(request: HttpRequest, code: str) -> HttpResponse:
    return render(request, "scheduling/queue/display.html", _display_context(code))


@require_GET
def queue_display_board(request: HttpRequest, code: str) -> HttpResponse:
    context = _display_context(code)
    if _unchanged(request, context["version"]):
        return HttpResponse(status=204)
    return render(request, "scheduling/queue/_display_board.html", context)


# --- Patient: waitlist ------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def waitlist(request: HttpRequest) -> HttpResponse:
    profile = _own_profile(request)
    # Booking pages may link here with ?consultation_type=<id>&doctor=<id> to prefill.
    initial = {key: request.GET.get(key) for key in ("consultation_type", "doctor")}
    form = WaitlistJoinForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            waitlist_services.waitlist_join(
                by=request.user,
                patient=profile,
                consultation_type=data["consultation_type"],
                doctor=data["doctor"],
                wanted_before=data["wanted_before"],
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(
                request, _("You are on the waitlist. We will offer you a slot when one frees up.")
            )
            return redirect("scheduling:waitlist")
    context = {
        "form": form,
        "entries": selectors.waitlist_entries_for_patient(request.user),
        "offers": selectors.waitlist_open_offers_for_patient(request.user),
    }
    return render(request, "scheduling/waitlist/index.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def waitlist_cancel(request: HttpRequest, entry_id: int) -> HttpResponse:
    entry = selectors.waitlist_entry_get_for(request.user, entry_id)
    if request.method == "POST":
        waitlist_services.waitlist_cancel(by=request.user, entry=entry)
        messages.success(request, _("You have left this waitlist."))
    return redirect("scheduling:waitlist")


@login_required
@require_http_methods(["GET", "POST"])
def waitlist_offer_accept(request: HttpRequest, offer_id: int) -> HttpResponse:
    offer = selectors.waitlist_offer_get_for(request.user, offer_id)
    if request.method == "POST":
        try:
            waitlist_services.waitlist_offer_accept(by=request.user, offer=offer)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                _(
                    "The appointment is booked. If you no longer need a later appointment "
                    "you had, please cancel it so someone else can have it."
                ),
            )
    return redirect("scheduling:waitlist")


@login_required
@require_http_methods(["GET", "POST"])
def waitlist_offer_decline(request: HttpRequest, offer_id: int) -> HttpResponse:
    offer = selectors.waitlist_offer_get_for(request.user, offer_id)
    if request.method == "POST":
        try:
            waitlist_services.waitlist_offer_decline(by=request.user, offer=offer)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request, _("Offer declined. You stay on the waitlist for other slots.")
            )
    return redirect("scheduling:waitlist")
