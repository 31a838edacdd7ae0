"""Browser journeys through documents: a patient asks for a PDF of a lab report, watches
the page follow the job (htmx polling, no reload) until it is ready, and downloads it;
a patient uploads a file with the progress bar and sees it awaiting review, and a file
that is not what it claims is refused with its reason in place, nothing stored.

The Celery worker is played by the test: the request's on-commit message is captured
and the task body (records.tasks.render_pdf) runs when the test says, so the page is
seen queued first and ready after. axe-core runs on every screen; the `page` fixture
fails on console errors and CSP violations.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from records import services_documents, tasks
from records.models import Document
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in
from tests.records.helpers import receive
from tests.records.helpers_documents import png_bytes
from tests.records.pdftext import extract_text

# The job page polls every 2 s; leave room for a few beats.
LIVE_TIMEOUT_MS = 15_000


def _capture_worker_messages(monkeypatch) -> list[int]:  # noqa: ANN001
    sent: list[int] = []
    monkeypatch.setattr(services_documents, "_send", lambda task, job_id: sent.append(job_id))
    return sent


def test_patient_gets_a_lab_report_pdf_and_downloads_it(
    live_server, page: Page, console, settings, tmp_path, monkeypatch
):
    settings.MEDIA_ROOT = tmp_path
    factories.make_location()
    patient = factories.make_patient(first_name="Мария", last_name="Соколова", language="en")
    receive(patient, "cbc", ["100", "6.0", "250"])
    sent = _capture_worker_messages(monkeypatch)

    sign_in(page, patient.email)
    page.goto("/records/documents/")
    expect(page.get_by_role("heading", level=1)).to_have_text("My documents")
    assert_accessible(page)
    page.get_by_role("button", name=re.compile(r"^PDF: Complete blood count")).click()

    expect(page).to_have_url(re.compile(r"/records/documents/pdf/[0-9a-f-]{36}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your PDF")
    expect(page.get_by_text("Waiting to be prepared")).to_be_visible()
    assert_accessible(page)
    page.evaluate("() => { window.__notReloaded = true; }")

    # The worker takes the message and renders the PDF; the page follows by itself.
    assert len(sent) == 1
    assert tasks.render_pdf(sent[0]) == "ready"
    download_link = page.get_by_role("link", name="Download the PDF")
    expect(download_link).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(page.get_by_text("The PDF is ready.")).to_be_visible()
    assert page.evaluate("() => window.__notReloaded") is True
    assert page.locator("[hx-trigger]").count() == 0  # polling stopped
    assert_accessible(page)

    with page.expect_download() as downloading:
        download_link.click()
    download = downloading.value
    assert re.fullmatch(r"lab_report-\d{8}\.pdf", download.suggested_filename)
    data = open(download.path(), "rb").read()  # noqa: PTH123, SIM115
    assert data.startswith(b"%PDF-")
    text = extract_text(data)
    assert "Соколова" in text and "Complete blood count" in text and "▼ Low" in text

    # The document is listed with its download from now on.
    page.goto("/records/documents/")
    document = Document.objects.get()
    expect(page.get_by_role("link", name=document.title, exact=True)).to_be_visible()
    expect(page.get_by_text("Ready")).to_be_visible()
    assert_accessible(page)


def test_patient_uploads_a_file_and_a_disguised_one_is_refused(
    live_server, page: Page, console, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    patient = factories.make_patient(language="en")
    disguised = tmp_path / "results.pdf"
    disguised.write_bytes(png_bytes() + b"MZ\x90\x00" + b"\x00" * 512)
    good = tmp_path / "blood-test.png"
    good.write_bytes(png_bytes())

    sign_in(page, patient.email)
    page.goto("/records/documents/")
    form = page.locator("form[data-upload-form]")
    form.get_by_label("What is it?").fill("Анализ из другой клиники")
    form.get_by_label("File", exact=True).set_input_files(str(disguised))
    form.get_by_role("button", name="Upload").click()

    # Refused in place (the form replaced by the server's answer), with the reason.
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("other data after the picture")
    expect(summary).to_be_focused()
    assert_accessible(page)
    assert not Document.objects.exists()
    assert not any((tmp_path / "documents").rglob("*"))  # nothing stored
    # The refusal is a 400 answer, which the browser logs; nothing else went wrong.
    console.assert_clean(allow=("/records/documents/upload/",))
    console.clear()

    form = page.locator("form[data-upload-form]")
    form.get_by_label("File", exact=True).set_input_files(str(good))
    form.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("Your file is uploaded.")).to_be_visible()
    # The title typed before the refusal was kept in the form.
    row = page.get_by_role("row").filter(has_text="Анализ из другой клиники")
    expect(row).to_contain_text("Awaiting review")
    assert_accessible(page)
    assert Document.objects.get().content_type == "image/png"
