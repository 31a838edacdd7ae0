"""Thin views: parse with a form, call one selector or service, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST
from django.views.i18n import set_language as django_set_language

from accounts import policies, selectors, services
from accounts.forms import (
    ConsentDecisionForm,
    IdentityDocumentsForm,
    PatientSearchForm,
    PersonalDataForm,
    SignupForm,
    VerifyIdentityForm,
)
from accounts.models import PatientProfile, Role
from accounts.validators import format_passport, format_snils


def _apply_errors(form, exc: ValidationError) -> None:  # noqa: ANN001
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _patient_profile(request: HttpRequest) -> PatientProfile:
    if request.user.role != Role.PATIENT or not hasattr(request.user, "patient_profile"):
        raise Http404
    return request.user.patient_profile


# --- Home ---------------------------------------------------------------------------


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    if user.role == Role.PATIENT:
        profile = _patient_profile(request)
        from allauth.mfa.models import Authenticator

        context = {
            "profile": profile,
            "consents": selectors.consent_states_for(profile),
            "has_mfa": Authenticator.objects.filter(user=user).exists(),
        }
        return render(request, "accounts/home_patient.html", context)
    context = {"staff": getattr(user, "staff_profile", None)}
    if policies.can_search_patients(user):
        context["awaiting_verification"] = selectors.patients_awaiting_verification(user)[:10]
        context["search_form"] = PatientSearchForm()
    return render(request, "accounts/home_staff.html", context)


# --- Registration ----------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None, initial={"language": request.LANGUAGE_CODE[:2]})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.patient_register(
                email=data["email"],
                password=data["password1"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                middle_name=data["middle_name"],
                birth_date=data["birth_date"],
                phone=data["phone"],
                language=data["language"],
                accept_health_data_consent=data["accept_health_data_consent"],
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            return redirect("accounts:verification_sent")
    return render(request, "accounts/signup.html", {"form": form})


def verification_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/verification_sent.html")


VERIFY_FAILURES = {
    "expired": gettext_lazy("This link has expired. Sign in to get a new one."),
    "used": gettext_lazy(
        "This link has already been used. Your email may already be confirmed — try signing in."
    ),
    "tampered": gettext_lazy(
        "This link is not valid. Please use the link from the most recent email."
    ),
}


@require_http_methods(["GET", "POST"])
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    # GET only shows a button: mail scanners that follow links must not use up the token.
    if request.method == "POST":
        try:
            services.email_verify(token=token)
        except services.EmailVerificationError as exc:
            return render(
                request,
                "accounts/verify_email.html",
                {"failure": VERIFY_FAILURES.get(exc.reason, VERIFY_FAILURES["tampered"])},
                status=400,
            )
        messages.success(request, _("Your email is confirmed. You can sign in now."))
        return redirect("account_login")
    return render(request, "accounts/verify_email.html", {"token": token})


# --- Patient: personal data, identity, consents ----------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def personal_data(request: HttpRequest) -> HttpResponse:
    profile = _patient_profile(request)
    form = PersonalDataForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        changes = {f: form.cleaned_data[f] for f in form.changed_data}
        profile.refresh_from_db()
        try:
            services.patient_profile_update(by=request.user, profile=profile, **changes)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("Your details are saved."))
            return redirect("accounts:personal_data")
    return render(request, "accounts/personal_data.html", {"form": form, "profile": profile})


@login_required
@require_http_methods(["GET", "POST"])
def identity(request: HttpRequest) -> HttpResponse:
    profile = _patient_profile(request)
    initial = {"snils": format_snils(profile.snils), "passport": format_passport(profile.passport)}
    form = IdentityDocumentsForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.patient_profile_update(
                by=request.user,
                profile=profile,
                snils=format_snils(data["snils"]),
                passport=format_passport(data["passport"]),
            )
            if data.get("scan"):
                services.identity_scan_upload(by=request.user, profile=profile, upload=data["scan"])
        except ValidationError as exc:
            if not hasattr(exc, "error_dict"):
                exc = ValidationError({"scan": exc.messages})
            _apply_errors(form, exc)
        else:
            messages.success(request, _("Your documents are saved. Reception will verify them."))
            return redirect("accounts:identity")
    verification = profile.current_verification()
    return render(
        request,
        "accounts/identity.html",
        {"form": form, "profile": profile, "verification": verification},
    )


@login_required
@require_http_methods(["GET", "POST"])
def consents(request: HttpRequest) -> HttpResponse:
    profile = _patient_profile(request)
    if request.method == "POST":
        form = ConsentDecisionForm(request.POST)
        if form.is_valid():
            service = (
                services.consent_give
                if form.cleaned_data["decision"] == "give"
                else services.consent_withdraw
            )
            try:
                service(by=request.user, profile=profile, kind=form.cleaned_data["kind"])
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, _("Your decision is recorded."))
        else:
            messages.error(request, _("That request could not be understood. Nothing was changed."))
        return redirect("accounts:consents")
    context = {
        "states": selectors.consent_states_for(profile),
        "history": selectors.consent_history_for(profile)[:50],
    }
    return render(request, "accounts/consents.html", context)


# --- Staff: identity verification ---------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def patient_search(request: HttpRequest) -> HttpResponse:
    if not policies.can_search_patients(request.user):
        raise Http404
    form = PatientSearchForm(request.GET or None)
    found = None
    searched = False
    if form.is_valid():
        searched = True
        found = selectors.patient_find(request.user, form.cleaned_data["query"])
    return render(
        request,
        "accounts/staff/patient_search.html",
        {
            "form": form,
            "found": found,
            "searched": searched,
            "awaiting": selectors.patients_awaiting_verification(request.user)[:50],
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def verify_identity(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = selectors.patient_profile_get_for(request.user, profile_id)
    if not policies.can_verify_identity(request.user, profile):
        raise Http404
    form = VerifyIdentityForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.identity_verify(by=request.user, profile=profile, **form.cleaned_data)
        except ValidationError as exc:
            _apply_errors(form, exc)
        except PermissionDenied as exc:
            raise Http404 from exc
        else:
            messages.success(request, _("Identity verified."))
            return redirect("accounts:patient_search")
    context = {
        "form": form,
        "profile": profile,
        "snils": format_snils(profile.snils),
        "passport": format_passport(profile.passport),
        "verifications": selectors.identity_verifications_for(profile),
    }
    return render(request, "accounts/staff/verify_identity.html", context)


@login_required
def identity_scan(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = selectors.patient_profile_get_for(request.user, profile_id)
    if (
        not (
            policies.can_verify_identity(request.user, profile)
            or policies.can_edit_own_profile(request.user, profile)
        )
        or not profile.identity_scan
    ):
        raise Http404
    from audit.models import AuditAction
    from audit.services import audit_record
    from clinic.files import sniff_content_type

    data = profile.identity_scan.open().read()
    audit_record(
        actor=request.user,
        action=AuditAction.DOWNLOAD,
        obj=profile,
        patient=profile.user,
        detail={"file": "identity_scan"},
    )
    response = HttpResponse(
        data, content_type=sniff_content_type(data[:16]) or "application/octet-stream"
    )
    response["Content-Disposition"] = 'inline; filename="document"'
    return response


# --- Language --------------------------------------------------------------------------


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's set_language, plus remembering the choice on the signed-in user."""
    language = request.POST.get("language", "")
    if request.user.is_authenticated:
        try:
            services.user_set_language(by=request.user, language=language)
        except ValidationError:
            messages.error(request, _("That language is not available."))
    response = django_set_language(request)
    next_url = request.POST.get("next", "/")
    if isinstance(response, HttpResponseRedirect) and not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}
    ):
        response["Location"] = "/"
    return response
