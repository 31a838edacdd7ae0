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
    BreakGlassForm,
    ConsentDecisionForm,
    DepartmentAssignForm,
    IdentityDocumentsForm,
    PatientSearchForm,
    PersonalDataForm,
    SignupForm,
    VerifyIdentityForm,
)
from accounts.models import PatientProfile, Role
from accounts.validators import format_passport, format_snils
from audit.models import AuditAction
from audit.services import audit_record


def _apply_errors(form, exc: ValidationError) -> None:  # noqa: ANN001
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


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


def _patient_profile(request: HttpRequest) -> PatientProfile:
    if request.user.role != Role.PATIENT or not hasattr(request.user, "patient_profile"):
        raise _denied(request)
    profile = request.user.patient_profile
    if request.method == "GET":
        # Patients' views of their own data are part of the record of access too.
        match = request.resolver_match
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW,
            obj=profile,
            patient=request.user,
            detail={"page": match.view_name if match else ""},
        )
    return profile


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
        raise _denied(request)
    form = PatientSearchForm(request.GET or None)
    found = None
    searched = False
    if form.is_valid():
        searched = True
        found = selectors.patient_find(request.user, form.cleaned_data["query"])
    context = {
        "form": form,
        "found": found,
        "searched": searched,
        # A doctor without a care relationship learns only that the patient exists.
        "found_visible": found is not None
        and policies.can_view_patient_demographics(request.user, found),
        "found_record": found is not None and policies.can_view_patient_record(request.user, found),
        "can_verify": found is not None and policies.can_verify_identity(request.user, found),
        "awaiting": selectors.patients_awaiting_verification(request.user)[:50],
    }
    return render(request, "accounts/staff/patient_search.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def verify_identity(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = selectors.identity_check_subject_get_for(request.user, profile_id)
    if request.method == "POST" and "department" in request.POST:
        department_form = DepartmentAssignForm(request.POST)
        if department_form.is_valid():
            services.patient_department_assign(
                by=request.user,
                patient=profile,
                department=department_form.cleaned_data["department"],
            )
            messages.success(request, _("Care department saved."))
            return redirect("accounts:verify_identity", profile_id=profile.pk)
        messages.error(request, _("Choose a department from the list. Nothing was changed."))
        return redirect("accounts:verify_identity", profile_id=profile.pk)
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
        "department_form": DepartmentAssignForm(initial={"department": profile.department_id}),
    }
    return render(request, "accounts/staff/verify_identity.html", context)


@login_required
def identity_scan(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = selectors.identity_scan_profile_get_for(request.user, profile_id)
    if not profile.identity_scan:
        raise Http404
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


# --- Clinicians: patients, records, break-glass ---------------------------------------


@login_required
def my_patients(request: HttpRequest) -> HttpResponse:
    if request.user.role not in {Role.DOCTOR, Role.NURSE}:
        raise _denied(request)
    patients = sorted(selectors.patients_in_care_of(request.user), key=lambda p: p.full_name())
    return render(request, "accounts/staff/my_patients.html", {"patients": patients})


@login_required
def patient_record(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = selectors.patient_record_get_for(request.user, profile_id)
    context = {
        "profile": profile,
        "snils": format_snils(profile.snils),
        "consents": selectors.consent_states_for(profile),
        "break_glass": not policies.has_care_relationship(request.user, profile),
    }
    return render(request, "accounts/staff/patient_record.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def break_glass(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = selectors.patient_for_break_glass(request.user, profile_id)
    if policies.can_view_patient_record(request.user, profile):
        return redirect("accounts:patient_record", profile_id=profile.pk)
    form = BreakGlassForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.break_glass_open(
                by=request.user, patient=profile, reason=form.cleaned_data["reason"]
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        except PermissionDenied as exc:
            raise Http404 from exc
        else:
            return redirect("accounts:patient_record", profile_id=profile.pk)
    return render(
        request, "accounts/staff/break_glass.html", {"form": form, "profile_id": profile.pk}
    )


# --- Patient: who opened my record -----------------------------------------------------


@login_required
def access_log(request: HttpRequest) -> HttpResponse:
    from django.core.paginator import Paginator

    from audit.selectors import access_log_for_patient

    profile = _patient_profile(request)
    if not policies.can_view_access_log(request.user, profile):
        raise Http404
    page = Paginator(access_log_for_patient(request.user), 25).get_page(request.GET.get("page"))
    return render(request, "accounts/access_log.html", {"page": page})


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
