"""Access-matrix rows for the documents pages (loaded by tests/test_access_matrix.py).

Patient pages open only for the patient whose document, report, visit or PDF job it
is; clinicians in charge of the patient (the doctor through the care grant, the nurse
through the department) open the staff pages and the PDF pages of the records they may
open; reception and administrators never; nobody opens an unrelated patient's. Every
refusal is a recorded 404 naming the patient. The public check of a verification code
(verify:*) shows validity only and needs no sign-in (tests/records/test_documents_verify.py).
"""

from __future__ import annotations

from tests.test_access_matrix import Rule, only

NOT_PERSONAL = {"verify:form", "verify:check"}

CLINICIANS = only("doctor", "nurse")
PATIENT_AND_CLINICIANS = only("patient", "doctor", "nurse")


def _documents(world: dict) -> dict:
    """Made once per world, for each side ("patient": the patient's own; "in_care": the
    patient the staff actors look after; "other": an unrelated patient): a released
    report, a visit (the patient's released), a PDF job of the report, and a stored file."""
    if "documents" in world:
        return world["documents"]
    from records import services as record_services
    from records import services_documents as documents
    from tests.records.helpers import receive
    from tests.records.helpers_documents import pdf_bytes, upload_file

    actors = world["actors"]
    doctor = actors["doctor"]
    sides = {
        "patient": world["own"]["patient"],
        "in_care": world["own"]["doctor"],
        "other": world["other"],
    }
    other_doctor = world["appointments"]["other"].doctor
    made: dict = {"report": {}, "visit": {}, "job": {}, "file": {}}
    for side, patient in sides.items():
        profile = patient.patient_profile
        report = receive(patient, "glucose", ["5.0"])  # released at once
        made["report"][side] = report
        visit = record_services.visit_create(
            by=None,
            patient=profile,
            doctor=other_doctor if side == "other" else doctor,
            summary="Осмотр",
        )
        if side == "patient":
            visit = record_services.visit_release(by=doctor, visit=visit)
        made["visit"][side] = visit
        requester = doctor if side == "in_care" else patient
        made["job"][side] = documents.pdf_render_request(by=requester, lab_report=report)
        uploader = doctor if side == "in_care" else patient
        made["file"][side] = documents.document_upload(
            by=uploader, patient=profile, upload=upload_file(pdf_bytes(), "scan.pdf")
        )
    world["documents"] = made
    return made


def _pick(kind: str):  # noqa: ANN202
    def args(world: dict, role: str, target: str) -> list:
        made = _documents(world)[kind]
        side = "other" if target == "other" else ("patient" if role == "patient" else "in_care")
        return [made[side].public_id]

    return args


MATRIX = {
    # The patient's own documents.
    "records:documents": Rule(False, only("patient")),
    "records:document_upload": Rule(False, only("patient")),
    "records:document_detail": Rule(True, own=only("patient"), other=only(), args=_pick("file")),
    "records:document_download": Rule(True, own=only("patient"), other=only(), args=_pick("file")),
    # PDFs of a report or a visit: the patient of their own released ones, clinicians of
    # the records they may open (a GET only leads back to the page).
    "records:result_pdf": Rule(
        True, own=PATIENT_AND_CLINICIANS, other=only(), args=_pick("report")
    ),
    "records:visit_pdf": Rule(True, own=PATIENT_AND_CLINICIANS, other=only(), args=_pick("visit")),
    "records:pdf_job": Rule(True, own=PATIENT_AND_CLINICIANS, other=only(), args=_pick("job")),
    "records:pdf_job_status": Rule(
        True, own=PATIENT_AND_CLINICIANS, other=only(), args=_pick("job")
    ),
    # Clinicians.
    "records:upload_queue": Rule(False, CLINICIANS),
    "records:staff_documents": Rule(True, own=CLINICIANS, other=only()),
    "records:staff_documents_panel": Rule(True, own=CLINICIANS, other=only()),
    "records:staff_document": Rule(True, own=CLINICIANS, other=only(), args=_pick("file")),
    "records:staff_document_download": Rule(True, own=CLINICIANS, other=only(), args=_pick("file")),
    "records:staff_document_review": Rule(True, own=CLINICIANS, other=only(), args=_pick("file")),
    "records:staff_document_release": Rule(True, own=CLINICIANS, other=only(), args=_pick("file")),
    "records:staff_visit_upload": Rule(True, own=CLINICIANS, other=only(), args=_pick("visit")),
}
