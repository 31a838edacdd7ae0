from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("verification-sent/", views.verification_sent, name="verification_sent"),
    path("verify/<str:token>/", views.verify_email, name="verify_email"),
    path("me/details/", views.personal_data, name="personal_data"),
    path("me/identity/", views.identity, name="identity"),
    path("me/consents/", views.consents, name="consents"),
    path("me/access-log/", views.access_log, name="access_log"),
    path("staff/patients/", views.patient_search, name="patient_search"),
    path("staff/my-patients/", views.my_patients, name="my_patients"),
    path("staff/patients/<int:profile_id>/", views.patient_record, name="patient_record"),
    path("staff/patients/<int:profile_id>/break-glass/", views.break_glass, name="break_glass"),
    path("staff/patients/<int:profile_id>/verify/", views.verify_identity, name="verify_identity"),
    path(
        "staff/patients/<int:profile_id>/identity-scan/", views.identity_scan, name="identity_scan"
    ),
]
