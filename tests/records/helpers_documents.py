"""Building documents test data through the services (the path production data takes)."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from records import services_documents as services
from records.models import Document, DocumentKind, PdfRender


@pytest.fixture
def media(settings, tmp_path):
    """Uploaded and rendered files go to a directory of this test's own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


def stored_files(root) -> list:  # noqa: ANN001
    return [p for p in root.rglob("*") if p.is_file()]


def png_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 30)).save(out, "JPEG")
    return out.getvalue()


def pdf_bytes(text: str = "Выписка из другой клиники") -> bytes:
    from weasyprint import HTML

    return HTML(string=f"<p>{text}</p>").write_pdf()


def upload_file(data: bytes, name: str = "scan.pdf", content_type: str = "application/pdf"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def render(job: PdfRender) -> PdfRender:
    """What the worker does with the job (records.tasks.render_pdf), here and now."""
    services.pdf_render_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def issue(doctor, patient, *, kind: str = DocumentKind.REFERRAL, release: bool = True, **kw):  # noqa: ANN001, ANN201
    """A clinic document written by `doctor` (who must be in charge of `patient`)."""
    document = services.document_issue(
        by=doctor,
        patient=patient.patient_profile,
        kind=kind,
        title=kw.pop("title", "Направление к кардиологу"),
        body=kw.pop("body", "Прошу проконсультировать: боли в груди при нагрузке."),
        release=release,
        **kw,
    )
    return document


def issue_rendered(doctor, patient, **kw) -> Document:  # noqa: ANN001
    document = issue(doctor, patient, **kw)
    render(document.renders.get())
    document.refresh_from_db()
    return document
