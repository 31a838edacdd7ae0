"""The public check of a verification code printed on a clinic PDF (names `verify:*`,
mounted at /verify/ by clinic/urls.py; no sign-in). It shows validity only."""

from django.urls import path

from records.views import documents as views

app_name = "verify"

urlpatterns = [
    path("", views.verify_form, name="form"),
    path("<str:code>/", views.verify_check, name="check"),
]
