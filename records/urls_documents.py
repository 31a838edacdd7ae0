"""Documents URLs, included into records.urls (names `records:*`, under /records/).
Patient pages first, then clinicians' pages under /records/staff/. Documents, jobs,
reports and visits are named by public UUIDs; a whole record by the patient profile id,
as the other staff pages do. The public verification check is in records.urls_verify."""

from django.urls import path

from records.views import documents as views

urlpatterns = [
    # The patient's own documents.
    path("documents/", views.my_documents, name="documents"),
    path("documents/upload/", views.upload, name="document_upload"),
    path("documents/<uuid:public_id>/", views.document_detail, name="document_detail"),
    path(
        "documents/<uuid:public_id>/download/",
        views.document_download,
        name="document_download",
    ),
    # PDFs: asked of a report or a visit (patients and clinicians), then watched.
    path("results/<uuid:public_id>/pdf/", views.request_report_pdf, name="result_pdf"),
    path("visits/<uuid:public_id>/pdf/", views.request_visit_pdf, name="visit_pdf"),
    path("documents/pdf/<uuid:public_id>/", views.pdf_job, name="pdf_job"),
    path("documents/pdf/<uuid:public_id>/status/", views.pdf_job_status, name="pdf_job_status"),
    # Clinicians.
    path("staff/uploads/", views.upload_queue, name="upload_queue"),
    path(
        "staff/patients/<int:profile_id>/documents/",
        views.staff_patient_documents,
        name="staff_documents",
    ),
    path(
        "staff/patients/<int:profile_id>/documents/panel/",
        views.staff_patient_documents_panel,
        name="staff_documents_panel",
    ),
    path("staff/documents/<uuid:public_id>/", views.staff_document, name="staff_document"),
    path(
        "staff/documents/<uuid:public_id>/download/",
        views.staff_document_download,
        name="staff_document_download",
    ),
    path(
        "staff/documents/<uuid:public_id>/review/",
        views.staff_document_review,
        name="staff_document_review",
    ),
    path(
        "staff/documents/<uuid:public_id>/release/",
        views.staff_document_release,
        name="staff_document_release",
    ),
    path(
        "staff/visits/<uuid:public_id>/documents/upload/",
        views.staff_visit_upload,
        name="staff_visit_upload",
    ),
]
