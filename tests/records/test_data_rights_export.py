"""The patient's exports (issue 6, item 9): the FHIR R4 Bundle validates with
fhir.resources' R4B models and holds every kind of item of the record; it leaves out
internal notes and anything not released to the patient; the PDF renders with the same
content; both are recorded as EXPORT; nobody else gets them."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from accounts import selectors as account_selectors
from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from records import export
from records import services as record_services
from records import services_data_rights as services
from records.models import DataRequest, DataRequestKind, DataRequestStatus
from tests import factories
from tests.records.data_rights_helpers import (
    ADDRESS,
    CANARIES,
    EMAIL,
    PASSPORT,
    PHONE,
    build_record,
    resources,
)
from tests.records.helpers import grant, receive
from tests.records.helpers_documents import media  # noqa: F401 - fixture
from tests.records.pdftext import extract_text

pytestmark = pytest.mark.django_db

EXPECTED_TYPES = {
    "Patient",
    "Organization",
    "Practitioner",
    "Location",
    "Consent",
    "Appointment",
    "Encounter",
    "Condition",
    "ClinicalImpression",
    "DiagnosticReport",
    "Observation",
    "DocumentReference",
    "MedicationRequest",
    "Task",
    "Immunization",
    "CarePlan",
    "QuestionnaireResponse",
    "AuditEvent",
}


@pytest.fixture
def record(media):  # noqa: F811
    return build_record()


def _export(record) -> dict:  # noqa: ANN001
    _request, bundle = services.data_export_json(by=record.patient, profile=record.profile)
    return bundle


def test_bundle_validates_as_fhir_r4b_and_holds_every_kind_of_item(record):
    bundle = _export(record)
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection"
    # Also as the bytes the patient downloads.
    Bundle.model_validate_json(json.dumps(bundle, ensure_ascii=False))
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert kinds == EXPECTED_TYPES
    # Every entry is addressable and every reference inside the bundle resolves.
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    assert len(full_urls) == len(bundle["entry"])
    text = json.dumps(bundle)
    for reference in re.findall(r'"reference": "(urn:uuid:[0-9a-f-]+)"', text):
        assert reference in full_urls, reference


def test_patient_resource_has_names_contacts_and_identifiers(record):
    bundle = _export(record)
    (patient,) = resources(bundle, "Patient")
    assert patient["name"][0]["family"] == "Экспортова"
    assert patient["name"][0]["given"] == ["Вера"]
    assert patient["birthDate"] == "1950-03-14"
    assert patient["gender"] == "female"
    telecom = {(t["system"], t["value"]) for t in patient["telecom"]}
    assert ("email", EMAIL) in telecom and ("phone", PHONE) in telecom
    assert patient["address"][0]["text"] == ADDRESS
    systems = {i.get("system"): i["value"] for i in patient["identifier"]}
    assert systems[export.SNILS_SYSTEM] == record.profile.snils
    assert systems[export.PASSPORT_SYSTEM] == PASSPORT
    snils = next(i for i in patient["identifier"] if i.get("system") == export.SNILS_SYSTEM)
    assert snils["type"]["coding"][0]["code"] == "SB"


def test_clinical_resources_carry_their_content(record):
    bundle = _export(record)
    (appointment,) = resources(bundle, "Appointment")
    assert appointment["status"] == "booked"
    assert appointment["start"] and appointment["end"]
    actors = [p["actor"].get("display") for p in appointment["participant"]]
    assert "Ирина Соколова" in actors

    (encounter,) = resources(bundle, "Encounter")
    assert encounter["id"] == str(record.visit.public_id)
    (condition,) = resources(bundle, "Condition")
    assert condition["code"]["coding"][0] == {"system": export.ICD10, "code": "I10"}
    assert encounter["diagnosis"][0]["condition"]["reference"] == f"urn:uuid:{condition['id']}"
    (impression,) = resources(bundle, "ClinicalImpression")
    assert impression["summary"].startswith("Давление в норме")
    assert [n["text"] for n in impression["note"]] == ["Пить больше воды."]

    reports = {r["id"]: r for r in resources(bundle, "DiagnosticReport")}
    assert set(reports) == {str(record.report.public_id), str(record.coded_report.public_id)}
    observations = {o["code"]["coding"][0]["code"]: o for o in resources(bundle, "Observation")}
    glucose = observations["14771-0"]
    assert glucose["valueQuantity"] == {"value": 7.4, "unit": "mmol/L"}
    assert glucose["referenceRange"][0]["low"]["value"] == 3.9
    assert glucose["referenceRange"][0]["high"]["value"] == 6.1
    assert glucose["interpretation"][0]["coding"][0] == {
        "system": export.V3_INTERPRETATION,
        "code": "H",
        "display": "High",
    }
    assert observations["5778-6"]["valueString"] == "соломенно-жёлтый"
    coded = observations["5804-0"]["valueCodeableConcept"]
    assert coded["coding"][0]["code"] == "260385009" and coded["text"] == "Negative"
    assert observations["5804-0"]["referenceRange"][0]["text"] == "negative"

    documents = {d["id"]: d for d in resources(bundle, "DocumentReference")}
    assert set(documents) == {str(record.document.public_id), str(record.upload.public_id)}
    upload = documents[str(record.upload.public_id)]
    assert upload["docStatus"] == "preliminary"  # awaiting the clinic's review
    assert upload["content"][0]["attachment"]["size"] == record.upload.size
    assert upload["content"][0]["attachment"]["url"].endswith(
        reverse("records:document_download", args=[record.upload.public_id])
    )
    referral = documents[str(record.document.public_id)]
    assert referral["type"]["coding"][0]["code"] == "57133-1"

    (medication,) = resources(bundle, "MedicationRequest")
    assert medication["medicationCodeableConcept"]["text"] == "Лизиноприл"
    assert medication["dispenseRequest"]["numberOfRepeatsAllowed"] == 2
    (task,) = resources(bundle, "Task")
    assert task["focus"]["reference"] == f"urn:uuid:{record.prescription.public_id}"
    (immunization,) = resources(bundle, "Immunization")
    assert immunization["vaccineCode"]["text"] == "Спутник V"
    assert immunization["protocolApplied"][0]["doseNumberPositiveInt"] == 2
    (plan,) = resources(bundle, "CarePlan")
    assert plan["title"] == "Гипертензия" and plan["status"] == "active"
    (intake,) = resources(bundle, "QuestionnaireResponse")
    assert intake["status"] == "completed"
    assert {i["linkId"] for i in intake["item"]} == {"reason", "allergies"}
    consents = resources(bundle, "Consent")
    assert len(consents) == 2  # health data at registration, telemedicine since
    assert all(c["provision"]["type"] == "permit" for c in consents)

    events = resources(bundle, "AuditEvent")
    assert events, "the doctor's opening of the record is in the access log"
    assert any(e["agent"][0]["who"].get("display") == "Ирина Соколова" for e in events)
    assert all(e["entity"][0]["what"]["reference"].startswith("urn:uuid:") for e in events)


def test_bundle_leaves_out_internal_notes_and_unreleased_items(record):
    text = json.dumps(_export(record), ensure_ascii=False)
    for canary in CANARIES:
        assert canary not in text
    assert str(record.hidden_report.public_id) not in text
    assert str(record.hidden_visit.public_id) not in text
    assert str(record.hidden_document.public_id) not in text


def test_json_export_is_recorded_and_kept_in_the_history(record):
    data_request, bundle = services.data_export_json(by=record.patient, profile=record.profile)
    assert data_request.kind == DataRequestKind.EXPORT_JSON
    assert data_request.status == DataRequestStatus.COMPLETED
    assert bundle["id"] == str(data_request.public_id)
    assert data_request.detail["resources"]["Observation"] == 3
    event = AuditEvent.objects.filter(action=AuditAction.EXPORT).get()
    assert event.actor == record.patient and event.patient == record.patient
    assert event.detail["format"] == "fhir_json"


def test_nobody_else_exports_a_patients_data(record):
    other = factories.make_patient()
    staff = record.doctor
    for intruder in (other, staff):
        with pytest.raises(PermissionDenied):
            services.data_export_json(by=intruder, profile=record.profile)
        with pytest.raises(PermissionDenied):
            export.patient_export_bundle(by=intruder, profile=record.profile)
        with pytest.raises(PermissionDenied):
            services.data_export_pdf_request(by=intruder, profile=record.profile)
        assert AuditEvent.objects.filter(
            actor=intruder, action=AuditAction.DENIED, patient=record.patient
        ).exists()
    assert not DataRequest.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.EXPORT).exists()


def test_download_view_sends_the_bundle_as_an_attachment(client, record):
    client.force_login(record.patient)
    response = client.post(reverse("records:data_export_json"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    assert response["Content-Disposition"].startswith('attachment; filename="fhir-export-')
    assert "no-store" in response["Cache-Control"]
    assert "Экспортова" not in response["Content-Disposition"]
    bundle = json.loads(response.content)
    assert bundle["resourceType"] == "Bundle"
    Bundle.model_validate(bundle)
    assert AuditEvent.objects.filter(actor=record.patient, action=AuditAction.EXPORT).count() == 1


def test_pdf_export_renders_the_record_and_its_download_is_recorded(
    client, record, celery_eager, django_capture_on_commit_callbacks
):
    client.force_login(record.patient)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("records:data_export_pdf"))
    data_request = DataRequest.objects.get(kind=DataRequestKind.EXPORT_PDF)
    assert response.status_code == 302
    assert response["Location"] == reverse("records:data_request", args=[data_request.public_id])
    # The task ran on commit (eager); the file is stored encrypted.
    data_request.refresh_from_db()
    assert data_request.status == DataRequestStatus.COMPLETED, data_request.detail
    with open(data_request.file.path, "rb") as raw:
        assert not raw.read().startswith(b"%PDF")

    page = client.get(reverse("records:data_request", args=[data_request.public_id]))
    assert page.status_code == 200
    assert reverse("records:data_export_download", args=[data_request.public_id]) in page.text

    download = client.get(reverse("records:data_export_download", args=[data_request.public_id]))
    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"
    assert "no-store" in download["Cache-Control"]
    pdf = download.content
    assert pdf.startswith(b"%PDF")
    text = extract_text(pdf)
    for expected in (
        "Экспортова",
        "Эссенциальная гипертензия",
        "Пить больше воды.",
        "Лизиноприл",
        "Спутник V",
        "Гипертензия",
        "Ирина Соколова",
        "Пенициллин",
    ):
        assert expected in text, expected
    for canary in CANARIES:
        assert canary not in text
    exports = AuditEvent.objects.filter(action=AuditAction.EXPORT, actor=record.patient)
    assert exports.filter(detail__format="pdf").count() == 1


def test_pdf_job_is_idempotent_and_requesting_again_finds_the_one_in_progress(record):
    first = services.data_export_pdf_request(by=record.patient, profile=record.profile)
    again = services.data_export_pdf_request(by=record.patient, profile=record.profile)
    assert again.pk == first.pk
    done = services.data_export_pdf_run(request_id=first.pk)
    assert done.status == DataRequestStatus.COMPLETED
    name = done.file.name
    assert services.data_export_pdf_run(request_id=first.pk).file.name == name


def test_sweep_requeues_lost_jobs_and_removes_old_files(record, django_capture_on_commit_callbacks):
    job = services.data_export_pdf_request(by=record.patient, profile=record.profile)
    later = timezone.now() + timedelta(minutes=2)
    assert services.data_export_sweep(now=later) == [job.pk]
    services.data_export_pdf_run(request_id=job.pk)
    job.refresh_from_db()
    path = Path(job.file.path)
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.data_export_sweep(now=timezone.now() + timedelta(days=8))
    job.refresh_from_db()
    assert not job.file and job.status == DataRequestStatus.COMPLETED
    assert not job.file_available
    assert not path.exists()


def test_another_patient_gets_404_for_a_pdf_export(client, record):
    job = services.data_export_pdf_request(by=record.patient, profile=record.profile)
    services.data_export_pdf_run(request_id=job.pk)
    other = factories.make_patient()
    client.force_login(other)
    for name in (
        "records:data_request",
        "records:data_request_status",
        "records:data_export_download",
    ):
        response = client.get(reverse(name, args=[job.public_id]))
        assert response.status_code == 404
        assert "Экспортова" not in response.text
    denials = AuditEvent.objects.filter(
        actor=other, action=AuditAction.DENIED, patient=record.patient
    )
    assert denials.count() == 3
    assert not AuditEvent.objects.filter(action=AuditAction.EXPORT).exists()


def test_staff_get_404_on_the_my_data_pages(client, record):
    client.force_login(record.doctor)
    for name in ("records:data_rights", "records:data_deletion", "records:data_export_json"):
        assert client.get(reverse(name)).status_code == 404
    assert client.post(reverse("records:data_export_json")).status_code == 404
    assert client.post(reverse("records:data_export_pdf")).status_code == 404
    assert AuditEvent.objects.filter(actor=record.doctor, action=AuditAction.DENIED).count() == 5
    assert not DataRequest.objects.exists()


def test_my_data_page_lists_the_history(client, record):
    services.data_export_json(by=record.patient, profile=record.profile)
    client.force_login(record.patient)
    response = client.get(reverse("records:data_rights"))
    assert response.status_code == 200
    assert "Download of your data (FHIR, JSON)" in response.text
    assert "25 years" in response.text  # the retention rule, before anyone asks to delete


def test_export_reads_a_fixed_number_of_queries_whatever_the_record_holds(
    record, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            export.bundle_of(export.collect(record.profile))
        return len(queries)

    before = count()
    doctor = factories.make_staff(Role.DOCTOR, full_name="Второй Врач")
    grant(doctor, record.patient)
    for days in (10, 20, 30):
        receive(record.patient, "glucose", ["5.0"], days_ago=days)
        visit = record_services.visit_create(
            by=doctor, patient=record.profile, diagnoses=[{"code": "E11.9", "text": "СД 2"}]
        )
        record_services.visit_note_add(by=doctor, visit=visit, text="Заметка", internal=False)
        record_services.visit_release(by=doctor, visit=visit)
    account_selectors.patient_record_get_for(doctor, record.profile.pk)
    assert count() == before


def test_admin_lists_requests_read_only_without_the_file_and_audited(
    client, login_staff, admin_user, record
):
    job = services.data_export_pdf_request(by=record.patient, profile=record.profile)
    services.data_export_pdf_run(request_id=job.pk)
    login_staff(admin_user)
    listing = client.get("/admin/records/datarequest/")
    assert listing.status_code == 200
    change = client.get(f"/admin/records/datarequest/{job.pk}/change/")
    assert change.status_code == 200
    assert "exports/" not in change.text  # the stored file is not shown
    assert AuditEvent.objects.filter(
        actor=admin_user,
        action=AuditAction.VIEW,
        object_type="records.datarequest",
        patient=record.patient,
    ).exists()
    client.post(f"/admin/records/datarequest/{job.pk}/change/", {"status": "failed"})
    job.refresh_from_db()
    assert job.status == DataRequestStatus.COMPLETED
