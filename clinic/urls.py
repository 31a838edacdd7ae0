from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from accounts import views as account_views
from clinic.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("", account_views.home, name="home"),
    path("i18n/setlang/", account_views.set_language, name="set_language"),
    # Registration is ours (profile and consent in one service); allauth handles sign-in,
    # password reset and MFA. Its email-management page would bypass our encrypted email,
    # so it leads to the personal data page instead.
    path("accounts/signup/", account_views.signup, name="account_signup"),
    path(
        "accounts/email/",
        RedirectView.as_view(pattern_name="accounts:personal_data"),
        name="account_email",
    ),
    path("accounts/", include("allauth.urls")),
    path("portal/", include("accounts.urls")),
    path("", include("scheduling.urls")),
    path("records/", include("records.urls")),
    path("verify/", include("records.urls_verify")),  # public check of a PDF's code
    path("", include("notifications.urls")),
    path("payments/", include("payments.urls")),
    path("telemedicine/", include("telemedicine.urls")),
    path("admin/", admin.site.urls),
]

handler403 = "clinic.errors.permission_denied"
handler404 = "clinic.errors.page_not_found"
handler500 = "clinic.errors.server_error"
