"""Records URLs (names `records:*`), mounted at /records/. Patient pages first, then
clinicians' pages under /records/staff/. Objects are named by public UUIDs; staff pages
of a whole record take the patient profile id, as accounts' record pages do."""

from django.urls import include, path

from records.views import patient, staff

app_name = "records"

urlpatterns = [
    # The patient's own record.
    path("visits/", patient.visits, name="visits"),
    path("results/", patient.results, name="results"),
    path("results/<uuid:public_id>/", patient.result_detail, name="result_detail"),
    path("results/trends/<str:loinc_code>/", patient.trend, name="trend"),
    # Clinicians.
    path("staff/review/", staff.review_queue, name="review_queue"),
    path("staff/results/<uuid:public_id>/", staff.result, name="staff_result"),
    path(
        "staff/results/<uuid:public_id>/release/",
        staff.result_release,
        name="staff_result_release",
    ),
    path("staff/patients/<int:profile_id>/", staff.chart, name="chart"),
    path(
        "staff/patients/<int:profile_id>/trends/<str:loinc_code>/",
        staff.trend,
        name="staff_trend",
    ),
    path(
        "staff/patients/<int:profile_id>/visits/new/",
        staff.visit_new,
        name="staff_visit_new",
    ),
    path("staff/visits/<uuid:public_id>/", staff.visit, name="staff_visit"),
    path("staff/visits/<uuid:public_id>/edit/", staff.visit_edit, name="staff_visit_edit"),
    path(
        "staff/visits/<uuid:public_id>/release/",
        staff.visit_release,
        name="staff_visit_release",
    ),
    path("", include("records.urls_care")),
    path("", include("records.urls_documents")),
    path("", include("records.urls_data_rights")),
]
