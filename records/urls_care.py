"""URLs of prescriptions, renewals, intake forms, vaccinations and care plans (names
`records:care_*`), included from records/urls.py. Patient pages under /records/care/,
clinicians' under /records/staff/care/. Objects are named by public UUIDs (an intake
form by its appointment's); a patient's care page by the profile id, as the chart is."""

from django.urls import path

from records.views import care as views

urlpatterns = [
    # The patient's own.
    path("care/prescriptions/", views.my_prescriptions, name="care_prescriptions"),
    path("care/renewals/", views.my_renewals, name="care_renewals"),
    path("care/renewals/new/", views.renewal_new, name="care_renewal_new"),
    path("care/renewals/<uuid:public_id>/", views.renewal_detail, name="care_renewal"),
    path("care/intake/", views.intake_list, name="care_intake_list"),
    path("care/intake/<uuid:public_id>/", views.intake_form, name="care_intake"),
    path("care/vaccinations/", views.my_vaccinations, name="care_vaccinations"),
    path("care/plans/", views.my_care_plans, name="care_plans"),
    # Clinicians.
    path("staff/care/renewals/", views.renewal_queue, name="care_renewal_queue"),
    path(
        "staff/care/renewals/<uuid:public_id>/",
        views.staff_renewal,
        name="care_staff_renewal",
    ),
    path("staff/care/patients/<int:profile_id>/", views.patient_care, name="care_patient"),
    path(
        "staff/care/patients/<int:profile_id>/prescriptions/new/",
        views.prescription_new,
        name="care_prescription_new",
    ),
    path(
        "staff/care/patients/<int:profile_id>/vaccinations/new/",
        views.vaccination_new,
        name="care_vaccination_new",
    ),
    path(
        "staff/care/patients/<int:profile_id>/plans/new/",
        views.care_plan_new,
        name="care_plan_new",
    ),
    path("staff/care/plans/<uuid:public_id>/", views.care_plan_edit, name="care_plan_edit"),
    path(
        "staff/care/appointments/<uuid:public_id>/intake/",
        views.staff_intake,
        name="care_staff_intake",
    ),
]
