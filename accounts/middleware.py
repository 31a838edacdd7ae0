"""Session lifetime, per-user language, and the staff MFA gate."""

from __future__ import annotations

import time
import zoneinfo
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.policies import staff_requires_mfa

SESSION_STARTED = "auth_started_at"
SESSION_LAST_SEEN = "auth_last_seen_at"


class SessionLifetimeMiddleware:
    """Ends a signed-in session after 15 idle minutes or 12 hours in all."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            started = request.session.get(SESSION_STARTED)
            last_seen = request.session.get(SESSION_LAST_SEEN, started)
            if started is None:
                request.session[SESSION_STARTED] = now
            elif (
                now - started > settings.SESSION_ABSOLUTE_TIMEOUT
                or now - (last_seen or started) > settings.SESSION_IDLE_TIMEOUT
            ):
                logout(request)
                messages.info(
                    request, _("You were signed out to protect your data. Please sign in again.")
                )
                return redirect(f"{reverse('account_login')}?next={request.path}")
            request.session[SESSION_LAST_SEEN] = now
        return self.get_response(request)


class UserLanguageMiddleware:
    """A signed-in user's chosen language wins over the browser's."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and request.user.language:
            translation.activate(request.user.language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


class UserTimezoneMiddleware:
    """Show times in the clinic's local time: a staff member's location, else the
    network's home time zone (CLINIC_TIME_ZONE). Storage stays UTC."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tz_name = settings.CLINIC_TIME_ZONE
        user = request.user
        if user.is_authenticated and user.role != "patient":
            profile = getattr(user, "staff_profile", None)
            if profile is not None and profile.location_id:
                tz_name = profile.location.time_zone
        timezone.activate(zoneinfo.ZoneInfo(tz_name))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


MFA_EXEMPT_PREFIXES = (
    "/accounts/2fa/",
    "/accounts/logout/",
    "/accounts/reauthenticate/",
    "/i18n/",
    "/static/",
    "/healthz",
)


class StaffMFARequiredMiddleware:
    """Staff must enrol TOTP before any staff page or the Django admin opens."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and staff_requires_mfa(user)
            and not request.path.startswith(MFA_EXEMPT_PREFIXES)
            and not _has_totp(user)
        ):
            messages.warning(
                request,
                _("Staff accounts must set up an authenticator app before continuing."),
            )
            return redirect("mfa_activate_totp")
        return self.get_response(request)


def _has_totp(user: object) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
