"""Reminder action links (no sign-in for confirm and cancel) and message preferences."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.models import Role
from accounts.views import _denied
from notifications import services
from notifications.compose import appointment_facts
from notifications.forms import FollowUpForm, PreferenceForm
from notifications.models import LinkAction
from scheduling import services as scheduling_services
from scheduling.selectors import staff as staff_selectors

PROBLEM_STATUS = {"invalid": 404, "not_yours": 404, "used": 410, "expired": 410, "closed": 410}


def _problem(request: HttpRequest, problem: services.LinkProblem) -> HttpResponse:
    texts = {
        "invalid": _("This link is not valid. It may have been copied incompletely."),
        "not_yours": _(
            "This link belongs to another patient's appointment. Sign out and open it "
            "again, or sign in with the account the reminder was sent to."
        ),
        "used": _("This link has already been used. Nothing was changed."),
        "expired": _("This link has expired. Nothing was changed."),
        "closed": _(
            "This appointment has changed since the reminder was sent. Nothing was changed."
        ),
    }
    response = render(
        request,
        "notifications/link_problem.html",
        {"text": texts[problem.reason], "reason": problem.reason},
        status=PROBLEM_STATUS[problem.reason],
    )
    return _private(response)


def _problem_page(request: HttpRequest, problem: services.LinkProblem) -> HttpResponse:
    """In the patient's language when the token was genuine (a used or expired link);
    otherwise in the visitor's."""
    if problem.link is None:
        return _problem(request, problem)
    with translation.override(_language_of(problem.link.appointment.patient.user)):
        return _problem(request, problem)


def _language_of(user) -> str:  # noqa: ANN001
    return services.message_language(user, services.preference_for(user))


def _private(response: HttpResponse) -> HttpResponse:
    # The token is in the address: it must not travel on to another site as a Referer
    # ("no-referrer" would also blank the Origin of our own form post, failing CSRF).
    response["Referrer-Policy"] = "same-origin"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def action_link(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what the link will do and asks (mail scanners that fetch links change
    nothing); POST does it."""
    try:
        link = services.action_link_resolve(token)
    except services.LinkProblem as problem:
        return _problem_page(request, problem)
    if link.action == LinkAction.RESCHEDULE:
        return _reschedule(request, token)
    # The page speaks the language the reminder was written in.
    patient = link.appointment.patient.user
    with translation.override(_language_of(patient)):
        return _act(request, token, link)


def _act(request: HttpRequest, token: str, link) -> HttpResponse:  # noqa: ANN001
    appointment = link.appointment
    context = {"link": link, "facts": appointment_facts(appointment)}
    if link.action == LinkAction.CANCEL:
        context["quote"] = scheduling_services.cancellation_quote(
            appointment, by=appointment.patient.user
        )
    if request.method == "POST":
        try:
            if link.action == LinkAction.CONFIRM:
                services.action_link_confirm(token=token)
            else:
                services.action_link_cancel(token=token)
        except services.LinkProblem as problem:
            return _problem(request, problem)
        except (ValidationError, PermissionDenied) as exc:
            error = " ".join(getattr(exc, "messages", [])) or _(
                "This cannot be done online. Please call the clinic."
            )
            unchanged = _("Nothing was changed.")
            context["error"] = error if unchanged in error else f"{error} {unchanged}"
            return _private(render(request, "notifications/link_action.html", context, status=409))
        return _private(render(request, "notifications/link_done.html", context))
    return _private(render(request, "notifications/link_action.html", context))


def _reschedule(request: HttpRequest, token: str) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    try:
        appointment = services.action_link_reschedule(by=request.user, token=token)
    except services.LinkProblem as problem:
        return _problem_page(request, problem)
    return redirect("scheduling:appointment_reschedule", public_id=appointment.public_id)


@login_required
@require_http_methods(["GET", "POST"])
def follow_up(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """Staff: invite the patient of a completed visit to book a follow-up (the form is on
    the staff appointment page; GET goes back there)."""
    appointment = staff_selectors.appointment_get_for(request.user, public_id, purpose="status")
    if request.method != "POST":
        return redirect("scheduling:staff_appointment", public_id=appointment.public_id)
    form = FollowUpForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose when to send the invitation. Nothing was changed."))
    else:
        try:
            rows = services.follow_up_invite(
                by=request.user, appointment=appointment, weeks=form.cleaned_data["weeks"]
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            if rows:
                messages.success(request, _("The follow-up invitation is arranged."))
            else:
                messages.info(request, _("A follow-up invitation was already arranged."))
    return redirect("scheduling:staff_appointment", public_id=appointment.public_id)


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    if request.user.role != Role.PATIENT:
        raise _denied(request)
    profile = getattr(request.user, "patient_profile", None)
    has_phone = bool(profile and profile.phone)
    preference = services.preference_for(request.user)
    if request.method == "POST":
        form = PreferenceForm(request.POST, has_phone=has_phone)
        if form.is_valid():
            services.preference_update(by=request.user, **form.cleaned_data)
            messages.success(request, _("Your message settings are saved."))
            return redirect("notifications:preferences")
    else:
        form = PreferenceForm(
            initial={
                "email_enabled": preference.email_enabled,
                "sms_enabled": preference.sms_enabled,
                "language": preference.language,
            },
            has_phone=has_phone,
        )
    return render(request, "notifications/preferences.html", {"form": form, "has_phone": has_phone})
