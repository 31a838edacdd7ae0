"""Uploads by patients and clinicians: recognised by content (not name), checked for size,
pixel bombs, truncation and hidden payloads, stored encrypted; a rejected file is a clear
reason and changes nothing (no row, no file); the size limit holds while the body is
read; patients' uploads wait for a clinician's review, and the patient sees the state."""

from __future__ import annotations

import re
import struct
import zlib

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from records import services as record_services
from records import services_documents as services
from records.models import Document, UploadState
from tests import factories
from tests.records.helpers import grant
from tests.records.helpers_documents import (  # noqa: F401
    jpeg_bytes,
    media,
    pdf_bytes,
    png_bytes,
    stored_files,
    upload_file,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def pixel_bomb_png(side: int = 50_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (2.5 gigapixels) in a few hundred KB."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + side // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def _pdf_with_script() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/OpenAction<</S/JavaScript/JS(app.alert(1))>>>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )


def _upload(patient, data: bytes, name: str = "scan.pdf", **kw):  # noqa: ANN001, ANN202
    with translation.override("en"):
        return services.document_upload(
            by=patient, patient=patient.patient_profile, upload=upload_file(data, name), **kw
        )


# --- Accepted by content ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maker", "name", "content_type"),
    [
        (pdf_bytes, "выписка.pdf", "application/pdf"),
        (jpeg_bytes, "photo.jpg", "image/jpeg"),
        (png_bytes, "scan.png", "image/png"),
        # Recognised by content, not name: a JPEG called .png is a JPEG.
        (jpeg_bytes, "scan.png", "image/jpeg"),
    ],
)
def test_patient_uploads_pdf_jpeg_png_stored_encrypted(
    settings, patient, maker, name, content_type
):
    data = maker()
    document = _upload(patient, data, name)
    assert document.content_type == content_type
    assert document.review_state == UploadState.PENDING and document.uploaded_by == patient
    assert document.title == name  # the file's own name, kept encrypted like any title
    on_disk = (settings.MEDIA_ROOT / document.file.name).read_bytes()
    assert data not in on_disk and data[:8] not in on_disk
    assert name not in document.file.name
    assert document.file.open().read() == data
    event = AuditEvent.objects.filter(actor=patient, action=AuditAction.CREATE).latest("seq")
    assert event.object_id == str(document.pk) and event.patient == patient


# --- Rejected by content, nothing stored --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "code", "words"),
    [
        (
            png_bytes() + b"MZ\x90\x00" + b"\x00" * 64 + b"This program",
            "report.pdf",
            "extra_data",
            "other data",
        ),
        (b"MZ\x90\x00\x03" + b"\x00" * 200, "report.pdf", "wrong_type", "not accepted"),
        (b"PK\x03\x04" + b"\x00" * 200, "report.pdf", "wrong_type", "not accepted"),
        (pixel_bomb_png(), "scan.png", "too_many_pixels", "too large in pixels"),
        (jpeg_bytes()[:200], "photo.jpg", "unreadable", "could not be read"),
        (b"", "empty.pdf", "unreadable", "empty"),
        (pdf_bytes()[:-300], "cut.pdf", "unreadable", "damaged"),
        (_pdf_with_script(), "form.pdf", "active_content", "scripts"),
    ],
    ids=[
        "png-with-exe-named-pdf",
        "exe-named-pdf",
        "zip-named-pdf",
        "pixel-bomb",
        "truncated-jpeg",
        "empty",
        "truncated-pdf",
        "pdf-with-javascript",
    ],
)
def test_bad_files_are_rejected_with_a_reason_and_nothing_is_stored(
    settings, patient, data, name, code, words
):
    with pytest.raises(ValidationError) as caught:
        _upload(patient, data, name)
    assert caught.value.error_dict["file"][0].code == code
    assert words in " ".join(caught.value.messages)
    assert "file" in caught.value.message_dict
    assert not Document.objects.exists()
    assert stored_files(settings.MEDIA_ROOT) == []
    assert not AuditEvent.objects.filter(object_type="records.document").exists()


def test_too_large_file_is_rejected(settings, patient, monkeypatch):
    monkeypatch.setattr(services, "UPLOAD_MAX_BYTES", 10_000)
    with pytest.raises(ValidationError) as caught:
        _upload(patient, pdf_bytes() + b"%" + b"x" * 20_000 + b"\n%%EOF\n")
    assert caught.value.error_dict["file"][0].code == "too_large"
    assert not Document.objects.exists() and stored_files(settings.MEDIA_ROOT) == []


# --- Through the page ----------------------------------------------------------------------------


def test_upload_page_shows_the_reason_and_changes_nothing(client, settings, patient):
    client.force_login(patient)
    bad = upload_file(png_bytes() + b"MZ" * 50, "report.pdf")
    response = client.post(reverse("records:document_upload"), {"title": "", "file": bad})
    assert response.status_code == 400
    html = response.content.decode()
    assert "There is a problem" in html and "other data after the picture" in html
    assert 'aria-invalid="true"' in html
    assert not Document.objects.exists() and stored_files(settings.MEDIA_ROOT) == []


def test_upload_page_accepts_a_file_and_the_patient_sees_it_pending(client, patient):
    client.force_login(patient)
    response = client.post(
        reverse("records:document_upload"),
        {"title": "Анализы из частной лаборатории", "file": upload_file(pdf_bytes())},
    )
    assert response.status_code == 302 and response["Location"] == reverse("records:documents")
    page = client.get(reverse("records:documents")).content.decode()
    assert "Анализы из частной лаборатории" in page and "Awaiting review" in page


def test_upload_by_xhr_answers_json_or_the_form_with_reasons(client, patient):
    client.force_login(patient)
    url = reverse("records:document_upload")
    good = client.post(
        url, {"file": upload_file(png_bytes(), "a.png")}, HTTP_X_REQUESTED_WITH="XMLHttpRequest"
    )
    assert good.status_code == 200 and good.json() == {"redirect": reverse("records:documents")}
    bad = client.post(
        url, {"file": upload_file(b"MZ" * 100, "a.pdf")}, HTTP_X_REQUESTED_WITH="XMLHttpRequest"
    )
    assert bad.status_code == 400
    fragment = bad.content.decode()
    assert fragment.lstrip().startswith("<form") and "data-upload-form" in fragment
    assert "not accepted" in fragment and "<html" not in fragment


def test_the_size_limit_holds_while_the_body_is_read(client, settings, patient, monkeypatch):
    monkeypatch.setattr(services, "UPLOAD_MAX_BYTES", 4096)
    client.force_login(patient)
    big = upload_file(b"%PDF-1.4\n" + b"0" * 200_000 + b"\n%%EOF\n")
    response = client.post(reverse("records:document_upload"), {"title": "x", "file": big})
    assert response.status_code == 400
    assert "too large" in response.content.decode()
    assert not Document.objects.exists() and stored_files(settings.MEDIA_ROOT) == []


def test_upload_still_checks_the_csrf_token(patient):
    client = Client(enforce_csrf_checks=True)
    client.force_login(patient)
    response = client.post(reverse("records:document_upload"), {"file": upload_file(pdf_bytes())})
    assert response.status_code == 403
    assert not Document.objects.exists()


def test_missing_file_is_a_field_error(client, patient):
    client.force_login(patient)
    response = client.post(reverse("records:document_upload"), {"title": "x"})
    assert response.status_code == 400 and "Choose a file to upload." in response.content.decode()


def test_upload_page_loads_the_progress_script_with_the_nonce(client, patient):
    client.force_login(patient)
    html = client.get(reverse("records:document_upload")).content.decode()
    assert '<progress id="upload-progress-bar"' in html
    assert 'src="/static/records/upload.js"' in html
    assert re.search(r'<script src="/static/records/upload\.js" nonce="[^"]+" defer>', html)


def test_staff_cannot_use_the_patient_upload_page(client, doctor):
    client.force_login(doctor)
    response = client.post(reverse("records:document_upload"), {"file": upload_file(pdf_bytes())})
    assert response.status_code == 404
    assert not Document.objects.exists()


# --- Clinicians attach files to a visit -----------------------------------------------------------


def test_clinician_attaches_a_file_to_a_visit(client, patient, doctor):
    grant(doctor, patient)
    visit = record_services.visit_create(by=doctor, patient=patient.patient_profile)
    client.force_login(doctor)
    url = reverse("records:staff_visit_upload", args=[visit.public_id])
    assert client.get(url).status_code == 200
    response = client.post(
        url, {"title": "ЭКГ", "file": upload_file(png_bytes(), "ecg.png"), "release": "on"}
    )
    document = Document.objects.get()
    assert response["Location"] == reverse("records:staff_document", args=[document.public_id])
    assert document.visit == visit and document.review_state == UploadState.ACCEPTED
    assert document.reviewed_by == doctor and document.released
    client.force_login(patient)
    assert (
        client.get(reverse("records:document_detail", args=[document.public_id])).status_code == 200
    )


def test_clinician_cannot_attach_to_a_visit_of_a_patient_not_in_their_care(
    client, patient, other_patient, doctor
):
    other_doctor = factories.make_staff(Role.DOCTOR)
    grant(other_doctor, other_patient)
    visit = record_services.visit_create(by=other_doctor, patient=other_patient.patient_profile)
    doctor.staff_profile.department = None
    doctor.staff_profile.save()
    client.force_login(doctor)
    url = reverse("records:staff_visit_upload", args=[visit.public_id])
    assert client.get(url).status_code == 404
    assert client.post(url, {"file": upload_file(pdf_bytes())}).status_code == 404
    assert not Document.objects.exists()
    with pytest.raises(PermissionDenied):
        services.document_upload(
            by=patient,
            patient=other_patient.patient_profile,
            upload=upload_file(pdf_bytes()),
        )


# --- Review of patients' uploads ---------------------------------------------------------------


def test_review_queue_accept_and_reject_with_a_reason_the_patient_sees(client, patient, doctor):
    grant(doctor, patient)
    keep = _upload(patient, pdf_bytes("Результаты МРТ"), "mri.pdf", title="МРТ колена")
    drop = _upload(patient, png_bytes(), "cat.png", title="Фото")
    client.force_login(doctor)
    queue = client.get(reverse("records:upload_queue")).content.decode()
    assert "МРТ колена" in queue and "Фото" in queue

    review = reverse("records:staff_document_review", args=[drop.public_id])
    missing_reason = client.post(review, {"decision": "reject", "reason": ""})
    assert missing_reason.status_code == 400
    assert "Say why the file is rejected" in missing_reason.content.decode()
    client.post(review, {"decision": "reject", "reason": "Это не медицинский документ."})
    client.post(
        reverse("records:staff_document_review", args=[keep.public_id]), {"decision": "accept"}
    )
    keep.refresh_from_db()
    drop.refresh_from_db()
    assert keep.review_state == UploadState.ACCEPTED and keep.reviewed_by == doctor
    assert drop.review_state == UploadState.REJECTED
    assert drop.review_reason == "Это не медицинский документ."
    assert AuditEvent.objects.filter(actor=doctor, action=AuditAction.REVIEW).count() == 2
    assert "No files are waiting" in client.get(reverse("records:upload_queue")).content.decode()

    client.force_login(patient)
    page = client.get(reverse("records:documents")).content.decode()
    assert "Accepted" in page and "Rejected" in page and "Это не медицинский документ." in page
    # Reviewed once is final; a rejected file is never shown as the clinic's.
    with pytest.raises(ValidationError):
        services.document_upload_review(by=doctor, document=drop, accept=True)
    with pytest.raises(ValidationError):
        services.document_release(by=doctor, document=drop)


def test_only_clinicians_in_charge_review(patient, doctor):
    upload = _upload(patient, pdf_bytes())
    stranger = factories.make_staff(Role.DOCTOR)
    stranger.staff_profile.department = None
    stranger.staff_profile.save()
    with pytest.raises(PermissionDenied):
        services.document_upload_review(by=stranger, document=upload, accept=True)
    with pytest.raises(PermissionDenied):
        services.document_upload_review(by=patient, document=upload, accept=True)
    nurse = factories.make_staff(Role.NURSE)  # the patient's department is not theirs
    with pytest.raises(PermissionDenied):
        services.document_upload_review(by=nurse, document=upload, accept=True)
