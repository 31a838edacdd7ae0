"""The patient's "My data" URLs, included into records.urls (names `records:*`, under
/records/). Requests are named by public UUIDs. The page after a deletion is for a
signed-out visitor and shows no personal data (its request comes from the session)."""

from django.urls import path

from records.views import data_rights as views

urlpatterns = [
    path("my-data/", views.my_data, name="data_rights"),
    path("my-data/export/fhir/", views.export_json, name="data_export_json"),
    path("my-data/export/pdf/", views.export_pdf, name="data_export_pdf"),
    path("my-data/requests/<uuid:public_id>/", views.data_request, name="data_request"),
    path(
        "my-data/requests/<uuid:public_id>/status/",
        views.data_request_status,
        name="data_request_status",
    ),
    path(
        "my-data/requests/<uuid:public_id>/download/",
        views.export_download,
        name="data_export_download",
    ),
    path("my-data/delete/", views.deletion, name="data_deletion"),
    path("my-data/deleted/", views.deletion_done, name="data_deletion_done"),
]
