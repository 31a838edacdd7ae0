"""Documents from the patient's side, the clinician's and the attacker's: "My documents"
lists released documents and the patient's own uploads with their state; another
patient's document, an unreleased one, or a PDF of a withdrawn result is a 404 with a
recorded denial; downloads are recorded attachments that nothing may cache; a PDF asked
for on the page is watched (htmx, every 2 s) until it is ready; clinicians see a
patient's documents in the chart, release them, and reception or admins see none."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from records import hooks
from records import services as record_services
from records import services_documents as services
from records.models import Document, DocumentKind, PdfRender, RenderState
from tests import factories
from tests.records.helpers import grant, receive
from tests.records.helpers_documents import (  # noqa: F401
    issue,
    issue_rendered,
    media,
    pdf_bytes,
    render,
    upload_file,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def _html(response) -> str:  # noqa: ANN001
    return response.content.decode()


def _denied(actor, patient) -> bool:  # noqa: ANN001
    return AuditEvent.objects.filter(
        actor=actor, action=AuditAction.DENIED, patient=patient
    ).exists()


# --- The patient's pages ---------------------------------------------------------------------


def test_my_documents_lists_released_documents_and_own_uploads(client, patient, doctor):
    grant(doctor, patient)
    released = issue_rendered(doctor, patient, title="Направление к кардиологу")
    hidden = issue_rendered(doctor, patient, title="Черновик выписки", release=False)
    mine = services.document_upload(
        by=patient,
        patient=patient.patient_profile,
        upload=upload_file(pdf_bytes()),
        title="Анализы из другой клиники",
    )
    client.force_login(patient)
    response = client.get(reverse("records:documents"))
    assert response.status_code == 200
    html = _html(response)
    assert "Направление к кардиологу" in html
    assert reverse("records:document_download", args=[released.public_id]) in html
    assert "Анализы из другой клиники" in html and "Awaiting review" in html
    assert "Черновик выписки" not in html and str(hidden.public_id) not in html
    event = AuditEvent.objects.filter(
        actor=patient, action=AuditAction.VIEW, object_type="records.document"
    ).latest("seq")
    assert set(event.detail["ids"]) == {str(released.pk), str(mine.pk)}
    assert response["Cache-Control"].startswith("no-store")


def test_download_is_a_recorded_attachment_without_personal_data_in_its_name(
    client, patient, doctor
):
    grant(doctor, patient)
    document = issue_rendered(doctor, patient)
    client.force_login(patient)
    response = client.get(reverse("records:document_download", args=[document.public_id]))
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF-")
    assert response["Content-Type"] == "application/pdf"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    name = re.search(r'filename="([^"]+)"', disposition).group(1)
    assert re.fullmatch(r"referral-\d{8}\.pdf", name)
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.filter(actor=patient, action=AuditAction.DOWNLOAD).latest("seq")
    assert event.object_type == "records.document" and event.object_id == str(document.pk)
    assert event.patient == patient


def test_another_patients_document_is_a_recorded_404(client, patient, other_patient, doctor):
    grant(doctor, other_patient)
    theirs = issue_rendered(doctor, other_patient)
    client.force_login(patient)
    for name in ("records:document_detail", "records:document_download"):
        response = client.get(reverse(name, args=[theirs.public_id]))
        assert response.status_code == 404
        assert other_patient.patient_profile.last_name not in _html(response)
    assert _denied(patient, other_patient)
    missing = client.get(
        reverse("records:document_detail", args=["0" * 8 + "-0000-4000-8000-" + "0" * 12])
    )
    assert missing.status_code == 404


def test_unreleased_documents_are_invisible_to_the_patient(client, patient, doctor):
    grant(doctor, patient)
    draft = issue_rendered(doctor, patient, release=False)
    # A clinician's PDF of a result still waiting for review.
    waiting = receive(patient, "hba1c", ["6.9"])
    job = render(services.pdf_render_request(by=doctor, lab_report=waiting))
    assert not job.document.released
    client.force_login(patient)
    for document in (draft, job.document):
        assert (
            client.get(reverse("records:document_detail", args=[document.public_id])).status_code
            == 404
        )
        assert (
            client.get(reverse("records:document_download", args=[document.public_id])).status_code
            == 404
        )
    assert _denied(patient, patient)
    services.document_release(by=doctor, document=draft)
    assert client.get(reverse("records:document_detail", args=[draft.public_id])).status_code == 200


def test_document_release_fires_the_hook_on_commit(
    patient, doctor, django_capture_on_commit_callbacks
):
    grant(doctor, patient)
    draft = issue_rendered(doctor, patient, release=False)
    seen = []
    hooks.document_ready.register(handler := lambda **kw: seen.append(kw))
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.document_release(by=doctor, document=draft)
            assert seen == []  # not before the commit
    finally:
        hooks.document_ready.unregister(handler)
    assert seen == [{"document_id": draft.pk, "patient_user_id": patient.pk}]


def test_pdf_of_a_result_withdrawn_for_review_is_hidden_again(client, patient, doctor):
    grant(doctor, patient)
    report = receive(patient, "hba1c", ["6.9"], source="lab", external_id="A1")
    record_services.lab_report_review(by=doctor, report=report, comment="Норма.", release=True)
    report.refresh_from_db()
    document = render(services.pdf_render_request(by=patient, lab_report=report)).document
    client.force_login(patient)
    assert (
        client.get(reverse("records:document_detail", args=[document.public_id])).status_code == 200
    )
    # An amendment sends the report back to review and hides it from the patient.
    record_services.lab_report_receive(
        by=None,
        patient=patient.patient_profile,
        test_type=report.test_type,
        observations=[
            {"loinc_code": "4548-4", "name": "HbA1c", "value_quantity": "7.9", "unit": "%"}
        ],
        status="amended",
        source="lab",
        external_id="A1",
    )
    assert (
        client.get(reverse("records:document_detail", args=[document.public_id])).status_code == 404
    )
    assert str(document.public_id) not in _html(client.get(reverse("records:documents")))


def test_patient_cannot_ask_a_pdf_of_an_unreleased_result(client, patient):
    waiting = receive(patient, "hba1c", ["6.9"])
    client.force_login(patient)
    response = client.post(reverse("records:result_pdf", args=[waiting.public_id]))
    assert response.status_code == 404
    assert not PdfRender.objects.exists()
    assert _denied(patient, patient)


def test_asking_for_a_pdf_leads_to_a_page_that_polls_until_ready(client, patient):
    report = receive(patient, "glucose", ["5.0"])
    client.force_login(patient)
    response = client.post(reverse("records:result_pdf", args=[report.public_id]))
    job = PdfRender.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("records:pdf_job", args=[job.public_id])

    page = client.get(response["Location"])
    html = _html(page)
    assert page.status_code == 200
    status_url = reverse("records:pdf_job_status", args=[job.public_id])
    assert f'hx-get="{status_url}?v=queued"' in html and 'hx-trigger="every 2s"' in html
    assert "Waiting to be prepared" in html

    # Polled while nothing changed: 204, nothing re-rendered.
    unchanged = client.get(f"{status_url}?v=queued", HTTP_HX_REQUEST="true")
    assert unchanged.status_code == 204

    render(job)
    ready = client.get(f"{status_url}?v=queued", HTTP_HX_REQUEST="true")
    html = _html(ready)
    assert ready.status_code == 200
    download = reverse("records:document_download", args=[job.document.public_id])
    assert download in html and "hx-trigger" not in html  # polling stops
    assert client.get(download).content.startswith(b"%PDF-")


def test_a_failed_pdf_says_so_and_offers_to_try_again(client, patient):
    report = receive(patient, "glucose", ["5.0"])
    job = services.pdf_render_request(by=patient, lab_report=report)
    PdfRender.objects.filter(pk=job.pk).update(state=RenderState.FAILED, error_code="render_failed")
    client.force_login(patient)
    html = _html(client.get(reverse("records:pdf_job_status", args=[job.public_id])))
    assert "Could not be prepared" in html and "Try again" in html and "hx-trigger" not in html


def test_visit_summary_pdf_for_the_patient(client, patient, doctor):
    grant(doctor, patient)
    visit = record_services.visit_create(
        by=doctor, patient=patient.patient_profile, summary="Здоров."
    )
    client.force_login(patient)
    assert client.post(reverse("records:visit_pdf", args=[visit.public_id])).status_code == 404
    visit = record_services.visit_release(by=doctor, visit=visit)
    response = client.post(reverse("records:visit_pdf", args=[visit.public_id]))
    job = PdfRender.objects.get()
    assert response["Location"] == reverse("records:pdf_job", args=[job.public_id])
    assert job.document.kind == DocumentKind.VISIT_SUMMARY and job.document.released


def test_my_documents_queries_do_not_grow_with_the_documents(
    client, patient, doctor, django_assert_max_num_queries
):
    grant(doctor, patient)
    issue_rendered(doctor, patient)
    services.document_upload(
        by=patient, patient=patient.patient_profile, upload=upload_file(pdf_bytes())
    )
    receive(patient, "glucose", ["5.0"])
    client.force_login(patient)
    client.get(reverse("records:documents"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("records:documents"))
    for n in range(4):
        issue_rendered(doctor, patient, title=f"Справка {n}", kind=DocumentKind.CERTIFICATE)
        services.document_upload(
            by=patient, patient=patient.patient_profile, upload=upload_file(pdf_bytes(f"{n}"))
        )
        receive(patient, "glucose", ["5.1"], days_ago=n + 1)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("records:documents"))
    assert response.status_code == 200


# --- Clinicians ---------------------------------------------------------------------------------


def test_chart_loads_the_documents_panel(client, patient, doctor):
    grant(doctor, patient)
    document = issue_rendered(doctor, patient, title="Выписка из стационара")
    client.force_login(doctor)
    profile_id = patient.patient_profile.pk
    chart = _html(client.get(reverse("records:chart", args=[profile_id])))
    assert f'hx-get="{reverse("records:staff_documents_panel", args=[profile_id])}"' in chart
    panel = client.get(reverse("records:staff_documents_panel", args=[profile_id]))
    assert panel.status_code == 200
    assert "Выписка из стационара" in _html(panel)
    assert reverse("records:staff_document", args=[document.public_id]) in _html(panel)


def test_clinician_sees_unreleased_documents_and_releases_them(client, patient, doctor):
    grant(doctor, patient)
    draft = issue_rendered(doctor, patient, title="Справка для бассейна", release=False)
    client.force_login(doctor)
    page = client.get(reverse("records:staff_document", args=[draft.public_id]))
    assert page.status_code == 200 and "Show to the patient" in _html(page)
    code = draft.verifications.get()
    assert code.display_code in _html(page)
    response = client.post(reverse("records:staff_document_release", args=[draft.public_id]))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.released and draft.released_by == doctor
    download = client.get(reverse("records:staff_document_download", args=[draft.public_id]))
    assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment")
    assert AuditEvent.objects.filter(actor=doctor, action=AuditAction.DOWNLOAD).exists()


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.ADMIN])
def test_reception_and_admins_see_no_documents(client, patient, doctor, role):
    grant(doctor, patient)
    document = issue_rendered(doctor, patient)
    desk = factories.make_staff(role)
    client.force_login(desk)
    for url in (
        reverse("records:staff_documents", args=[patient.patient_profile.pk]),
        reverse("records:staff_document", args=[document.public_id]),
        reverse("records:staff_document_download", args=[document.public_id]),
        reverse("records:upload_queue"),
    ):
        assert client.get(url).status_code == 404, url
    assert _denied(desk, patient)


def test_staff_request_a_pdf_of_an_unreleased_result_for_themselves(client, patient, doctor):
    grant(doctor, patient)
    waiting = receive(patient, "hba1c", ["6.9"])
    client.force_login(doctor)
    response = client.post(reverse("records:result_pdf", args=[waiting.public_id]))
    job = PdfRender.objects.get()
    assert response["Location"] == reverse("records:pdf_job", args=[job.public_id])
    render(job)
    page = _html(client.get(reverse("records:pdf_job", args=[job.public_id])))
    assert reverse("records:staff_document_download", args=[job.document.public_id]) in page
    assert not Document.objects.get(pk=job.document_id).released


def test_break_glass_view_of_documents_is_flagged(client, patient, doctor):
    from accounts import services as account_services

    grant(doctor, patient)
    issue_rendered(doctor, patient)
    stranger = factories.make_staff(Role.DOCTOR, language="en")
    stranger.staff_profile.department = None
    stranger.staff_profile.save()
    client.force_login(stranger)
    url = reverse("records:staff_documents", args=[patient.patient_profile.pk])
    assert client.get(url).status_code == 404
    account_services.break_glass_open(
        by=stranger, patient=patient.patient_profile, reason="Пациент без сознания в приёмном"
    )
    response = client.get(url)
    assert response.status_code == 200 and "Emergency access" in _html(response)
    event = AuditEvent.objects.filter(actor=stranger, action=AuditAction.VIEW).latest("seq")
    assert event.break_glass and event.reason
