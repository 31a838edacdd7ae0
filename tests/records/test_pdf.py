"""PDFs: a real PDF with Cyrillic text (read back through the fonts' ToUnicode maps),
the letterhead, the values, units, ranges and flags in words, the verification code and
its public URL; the render job goes queued -> ready through the Celery task, is
idempotent, and stores the PDF encrypted; a failure is a state, not a crash."""

from __future__ import annotations

from unittest import mock

import pytest
from django.conf import settings

from audit.models import AuditAction, AuditEvent
from records import hooks, pdf, tasks
from records import services_documents as services
from records.models import (
    Document,
    DocumentKind,
    DocumentVerification,
    PdfRender,
    RenderState,
)
from tests import factories
from tests.records.helpers import grant, receive
from tests.records.helpers_documents import issue, issue_rendered, media, render  # noqa: F401
from tests.records.pdftext import extract_text, font_names, page_count

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def _russian(user):  # noqa: ANN001, ANN202
    user.language = "ru"
    user.save(update_fields=["language"])
    return user


def test_lab_report_pdf_is_a_real_pdf_with_cyrillic_values_ranges_flags_and_code(patient, doctor):
    _russian(patient)
    location = factories.make_location()
    report = receive(patient, "cbc", ["100", "6.0", "250"], conclusion="Анемия лёгкой степени.")
    job = services.pdf_render_request(by=patient, lab_report=report)
    assert job.state == RenderState.QUEUED

    job = render(job)

    assert job.state == RenderState.READY and job.error_code == ""
    document = job.document
    data = document.file.open().read()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert page_count(data) == 1
    assert {"DejaVu-Sans", "DejaVu-Sans-Bold"} <= font_names(data)
    text = extract_text(data)
    profile = patient.patient_profile
    # Cyrillic: the patient, the test's Russian name, the laboratory, the conclusion.
    assert profile.last_name in text and "Анна" in text
    assert "Общий анализ крови" in text
    assert "Лаборатория «Гемотест»" in text
    assert "Анемия лёгкой степени." in text
    # The letterhead.
    assert settings.CLINIC_NAME in text
    assert location.address in text
    # Values, units, ranges (Russian number format) and the flag in words, not colour.
    assert "100" in text and "g/L" in text and "120–160" in text
    assert "▼" in text
    code = DocumentVerification.objects.get(document=document)
    assert code.display_code in text
    assert f"{settings.SITE_URL}/verify/{code.display_code}/" in text
    # Nothing about the patient in the code.
    assert profile.last_name not in code.code and str(patient.pk) not in code.code[:2]


def test_flags_are_words_in_english_too(patient):
    report = receive(patient, "glucose", ["7.4"])
    document = render(services.pdf_render_request(by=patient, lab_report=report)).document
    text = extract_text(document.file.open().read())
    assert "Fasting glucose" in text
    assert "▲ High" in text
    assert "3.9–6.1" in text and "mmol/L" in text


def test_every_kind_renders_with_letterhead_and_code(patient, doctor):
    from records import services as record_services

    grant(doctor, patient)
    visit = record_services.visit_create(
        by=doctor,
        patient=patient.patient_profile,
        summary="Давление в норме. Повторный приём через месяц.",
        diagnoses=[{"code": "I10", "text": "Эссенциальная гипертензия"}],
    )
    record_services.visit_note_add(by=doctor, visit=visit, text="Секретная заметка", internal=True)
    record_services.visit_note_add(
        by=doctor, visit=visit, text="Измеряйте давление утром.", internal=False
    )
    visit = record_services.visit_release(by=doctor, visit=visit)
    texts = {}
    for kind in (
        DocumentKind.REFERRAL,
        DocumentKind.DISCHARGE_SUMMARY,
        DocumentKind.PRESCRIPTION,
        DocumentKind.CERTIFICATE,
    ):
        document = issue_rendered(doctor, patient, kind=kind, title=f"Документ {kind}")
        texts[kind] = extract_text(document.file.open().read())
    summary = render(services.pdf_render_request(by=patient, visit=visit)).document
    texts["visit"] = extract_text(summary.file.open().read())
    for kind, text in texts.items():
        assert settings.CLINIC_NAME in text, kind
        assert "verify" in text, kind
    assert "Прошу проконсультировать" in texts[DocumentKind.REFERRAL]
    assert doctor.staff_profile.full_name in texts[DocumentKind.PRESCRIPTION]
    assert "Эссенциальная гипертензия" in texts["visit"] and "I10" in texts["visit"]
    assert "Измеряйте давление утром." in texts["visit"]
    # A patient's document: never an internal note.
    assert "Секретная заметка" not in texts["visit"]


def test_the_pdf_is_stored_encrypted(patient):
    report = receive(patient, "glucose", ["5.0"])
    document = render(services.pdf_render_request(by=patient, lab_report=report)).document
    on_disk = (settings.MEDIA_ROOT / document.file.name).read_bytes()
    assert b"%PDF" not in on_disk
    assert patient.patient_profile.last_name.encode() not in on_disk
    assert document.file.open().read().startswith(b"%PDF-")
    assert document.size == len(document.file.open().read()) and len(document.sha256) == 64


def test_task_is_idempotent_and_renders_once(patient):
    report = receive(patient, "glucose", ["5.0"])
    job = services.pdf_render_request(by=patient, lab_report=report)
    assert tasks.render_pdf(job.pk) == "ready"
    document = Document.objects.get(pk=job.document_id)
    first = (document.file.name, document.sha256)
    # The same message delivered again (acks_late redelivery): nothing changes.
    assert tasks.render_pdf(job.pk) == "ready"
    document.refresh_from_db()
    assert (document.file.name, document.sha256) == first
    assert DocumentVerification.objects.filter(document=document).count() == 1
    assert tasks.render_pdf(987654321) == "missing"


def test_request_enqueues_on_commit_and_the_worker_makes_it_ready(
    patient, celery_eager, django_capture_on_commit_callbacks
):
    report = receive(patient, "glucose", ["5.0"])
    ready = []
    hooks.document_ready.register(ready_handler := lambda **kw: ready.append(kw))
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            job = services.pdf_render_request(by=patient, lab_report=report)
            assert PdfRender.objects.get(pk=job.pk).state == RenderState.QUEUED
    finally:
        hooks.document_ready.unregister(ready_handler)
    assert callbacks  # the message is sent after the commit, not before
    job.refresh_from_db()
    assert job.state == RenderState.READY and job.finished_at >= job.started_at
    assert ready == [{"document_id": job.document_id, "patient_user_id": patient.pk}]
    created = AuditEvent.objects.filter(
        action=AuditAction.CREATE, object_type="records.document", object_id=str(job.document_id)
    )
    assert created.exists()


def test_asking_again_reuses_a_fresh_pdf_and_supersedes_an_outdated_one(patient, doctor):
    from records import services as record_services

    grant(doctor, patient)
    report = receive(patient, "glucose", ["5.0"], source="lab", external_id="R-1")
    first = render(services.pdf_render_request(by=patient, lab_report=report))
    again = services.pdf_render_request(by=patient, lab_report=report)
    assert again.pk == first.pk  # nothing changed: the ready PDF
    old_code = DocumentVerification.objects.get(document=first.document)

    # The laboratory amends the values: a new PDF, and the old code stops vouching.
    record_services.lab_report_receive(
        by=None,
        patient=patient.patient_profile,
        test_type=report.test_type,
        observations=[
            {
                "loinc_code": "14771-0",
                "name": "Glucose",
                "value_quantity": "5.6",
                "unit": "mmol/L",
            }
        ],
        status="amended",
        source="lab",
        external_id="R-1",
    )
    newer = services.pdf_render_request(by=patient, lab_report=report)
    assert newer.document_id != first.document_id
    render(newer)
    old_code.refresh_from_db()
    assert old_code.revoked and old_code.revoked_reason == "superseded"
    assert DocumentVerification.objects.get(document=newer.document).revoked is False


def test_two_requests_while_rendering_share_the_job(patient):
    report = receive(patient, "glucose", ["5.0"])
    first = services.pdf_render_request(by=patient, lab_report=report)
    second = services.pdf_render_request(by=patient, lab_report=report)
    assert first.pk == second.pk
    assert PdfRender.objects.count() == 1


def test_a_render_failure_is_a_failed_state_with_a_code(patient):
    report = receive(patient, "glucose", ["5.0"])
    job = services.pdf_render_request(by=patient, lab_report=report)
    with mock.patch.object(pdf, "html_to_pdf", side_effect=RuntimeError("cairo")):
        job = render(job)
    assert job.state == RenderState.FAILED and job.error_code == "render_failed"
    assert not Document.objects.get(pk=job.document_id).file
    # Asking again starts a new job on the same document.
    retry = services.pdf_render_request(by=patient, lab_report=report)
    assert retry.pk != job.pk and retry.document_id == job.document_id
    assert render(retry).state == RenderState.READY


def test_sweep_requeues_lost_messages_and_dead_workers(patient, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    report = receive(patient, "glucose", ["5.0"])
    job = services.pdf_render_request(by=patient, lab_report=report)
    now = timezone.now()
    assert services.pdf_render_sweep(now=now) == []  # just queued: its message is on its way
    with (
        mock.patch.object(tasks.render_pdf, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert services.pdf_render_sweep(now=now + timedelta(minutes=2)) == [job.pk]
    delay.assert_called_once_with(job.pk)
    # A worker that died mid-render: the claim expires and the job is queued again.
    PdfRender.objects.filter(pk=job.pk).update(
        state=RenderState.RENDERING, started_at=now - timedelta(minutes=10), attempts=1
    )
    assert services.pdf_render_sweep(now=now) == [job.pk]
    job.refresh_from_db()
    assert job.state == RenderState.QUEUED
    # After three attempts it gives up, and says so.
    PdfRender.objects.filter(pk=job.pk).update(
        state=RenderState.RENDERING, started_at=now - timedelta(minutes=10), attempts=3
    )
    assert services.pdf_render_sweep(now=now) == []
    job.refresh_from_db()
    assert job.state == RenderState.FAILED and job.error_code == "gave_up"


def test_a_claimed_job_is_left_to_its_worker(patient):
    from django.utils import timezone

    report = receive(patient, "glucose", ["5.0"])
    job = services.pdf_render_request(by=patient, lab_report=report)
    PdfRender.objects.filter(pk=job.pk).update(
        state=RenderState.RENDERING, started_at=timezone.now(), attempts=1
    )
    assert render(job).state == RenderState.RENDERING
    assert not Document.objects.get(pk=job.document_id).file


def test_weasyprint_fetches_nothing(patient, doctor):
    grant(doctor, patient)
    document = issue(
        doctor,
        patient,
        body='<img src="file:///etc/passwd"> <link rel="stylesheet" href="http://127.0.0.1:9/x.css">',
    )
    # The text is escaped by the template; even the raw HTML path refuses other schemes.
    real_open = __import__("urllib.request").request.OpenerDirector.open
    fetched = []

    def spy(self, request, *args, **kwargs):  # noqa: ANN001, ANN202
        fetched.append(getattr(request, "full_url", request))
        return real_open(self, request, *args, **kwargs)

    with mock.patch("urllib.request.OpenerDirector.open", spy):
        render(document.renders.get())
        pdf.html_to_pdf('<img src="file:///etc/hostname"><p>x</p>', language="en")
    assert fetched and all(url.startswith("data:") for url in fetched)  # the QR code only
    text = extract_text(Document.objects.get(pk=document.pk).file.open().read())
    assert "file:///etc/passwd" in text  # shown as text, never fetched
