"""PDFs of the clinic's documents, rendered from HTML templates with WeasyPrint.

`render_document(document, verification_code=...)` returns the bytes of one document's
PDF: a lab report (values, units, reference ranges and flags in words), a visit summary
(never internal notes), a referral, a discharge summary, a prescription or a
certificate. Each page carries the clinic's letterhead (settings.CLINIC_NAME and the
location's address) and the verification code with the public URL where a pharmacy or
another clinic checks it (and a QR code of that URL).

Fonts are DejaVu (Cyrillic; `make sysdeps` installs fonts-dejavu-core). WeasyPrint
fetches nothing while rendering: the only resources allowed are `data:` URIs (the QR
code), so no file or network address can be reached from a document's content.

Rendering takes a few hundred milliseconds: it runs in a Celery worker
(records.tasks.render_pdf), never in a request.
"""

from __future__ import annotations

import base64
import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.safestring import mark_safe

from records import presentation
from records.models import (
    Document,
    DocumentKind,
    Interpretation,
    LabReport,
    Observation,
    ReportStatus,
    Visit,
)
from records.verification import display_code as format_code

# WeasyPrint reports every step at INFO; a worker's log needs none of it.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

TEMPLATES = {
    DocumentKind.LAB_REPORT: "records/pdf/lab_report.html",
    DocumentKind.VISIT_SUMMARY: "records/pdf/visit_summary.html",
    DocumentKind.REFERRAL: "records/pdf/written.html",
    DocumentKind.DISCHARGE_SUMMARY: "records/pdf/written.html",
    DocumentKind.PRESCRIPTION: "records/pdf/written.html",
    DocumentKind.CERTIFICATE: "records/pdf/written.html",
}

# A flag in a PDF: a glyph DejaVu has, and the words (never the glyph alone).
PDF_FLAG_GLYPHS = {
    Interpretation.NORMAL: "",
    Interpretation.HIGH: "\u25b2",  # ▲
    Interpretation.LOW: "\u25bc",  # ▼
    Interpretation.CRITICAL_HIGH: "\u25b2\u25b2",
    Interpretation.CRITICAL_LOW: "\u25bc\u25bc",
    Interpretation.ABNORMAL: "!",
}


class RenderFailed(Exception):
    """The document cannot be rendered (its source is gone, or WeasyPrint failed)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def verification_url(code: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("verify:check", args=[format_code(code)])


def _qr_data_uri(url: str) -> str:
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, border=1)
    svg = image.to_string()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def _letterhead_location(document: Document) -> Any:
    from accounts.models import Location

    visit = document.visit or (document.lab_report.visit if document.lab_report else None)
    if visit is not None and visit.location_id:
        return visit.location
    for person in (document.author, getattr(document.lab_report, "ordered_by", None)):
        staff = getattr(person, "staff_profile", None) if person is not None else None
        if staff is not None and staff.location_id:
            return staff.location
    return Location.objects.order_by("pk").first()


def _person(user: Any) -> str:
    if user is None:
        return ""
    staff = getattr(user, "staff_profile", None)
    if staff is None:
        return ""
    specialty = staff.specialty.name if staff.specialty_id else staff.title
    return f"{staff.full_name}, {specialty}" if specialty else staff.full_name


@dataclass
class PdfRow:
    name: str
    value: str
    unit: str
    range: str
    flag_glyph: str
    flag_label: str
    abnormal: bool
    note: str
    status: str


def _rows(report: LabReport) -> list[PdfRow]:
    rows = []
    observations: list[Observation] = list(report.observations.order_by("sort_order", "id"))
    for obs in observations:
        flag = presentation.flag_of(obs.interpretation)
        rows.append(
            PdfRow(
                name=obs.name,
                value=presentation.value_text(obs) or "\u2014",
                unit=obs.unit,
                range=presentation.reference_range(obs) or "\u2014",
                flag_glyph=PDF_FLAG_GLYPHS.get(obs.interpretation, ""),
                flag_label=flag.label if flag else "",
                abnormal=bool(flag and flag.abnormal),
                note=obs.note,
                status=obs.get_status_display()
                if obs.status in (ReportStatus.PRELIMINARY, ReportStatus.AMENDED)
                else "",
            )
        )
    return rows


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in (text or "").replace("\r\n", "\n").split("\n\n") if p.strip()]


def document_context(document: Document, *, verification_code: str, now: datetime) -> dict:
    """Everything a document's template shows. Raises RenderFailed("source_gone") when
    the report or visit it shows no longer exists."""
    profile = document.patient
    url = verification_url(verification_code)
    location = _letterhead_location(document)
    context: dict[str, Any] = {
        "document": document,
        "title": document.title or document.get_kind_display(),
        "kind_label": document.get_kind_display(),
        "clinic_name": settings.CLINIC_NAME,
        "location": location,
        "patient_name": profile.full_name(),
        "birth_date": formats.date_format(profile.birth_date, "j E Y")
        if profile.birth_date
        else "",
        "issued": presentation.local_time(now, "j E Y"),
        "issued_time": presentation.local_time(now),
        "code": format_code(verification_code),
        "verify_url": url,
        "verify_root": settings.SITE_URL.rstrip("/") + reverse("verify:form"),
        "qr": _qr_data_uri(url),
        "author": _person(document.author),
    }
    if document.kind == DocumentKind.LAB_REPORT:
        report = document.lab_report
        if report is None:
            raise RenderFailed("source_gone")
        context.update(
            report=report,
            rows=_rows(report),
            report_issued=presentation.local_time(report.issued_at),
            collected=presentation.local_time(report.collected_at),
            reviewed=presentation.local_time(report.reviewed_at),
            reviewer=_person(report.reviewed_by),
            ordered_by=_person(report.ordered_by),
        )
    elif document.kind == DocumentKind.VISIT_SUMMARY:
        visit: Visit | None = document.visit
        if visit is None:
            raise RenderFailed("source_gone")
        context.update(
            visit=visit,
            visit_started=presentation.local_time(visit.started_at),
            doctor=_person(visit.doctor),
            diagnoses=list(visit.diagnoses.order_by("sort_order", "id")),
            summary=_paragraphs(visit.summary),
            # A patient's document: their notes, never internal ones.
            notes=[
                (presentation.local_time(n.created_at), _paragraphs(n.text))
                for n in visit.notes.filter(internal=False).order_by("created_at", "id")
            ],
        )
    else:
        context.update(
            paragraphs=_paragraphs(document.body),
            visit_started=presentation.local_time(document.visit.started_at, "j E Y")
            if document.visit
            else "",
        )
    return context


@functools.lru_cache(maxsize=8)
def _stylesheet(language: str) -> Any:
    from weasyprint import CSS

    # A CSS string literal: backslashes and quotes escaped, no line breaks.
    clinic = " ".join(settings.CLINIC_NAME.split()).replace("\\", "\\\\").replace('"', '\\"')
    with translation.override(language):
        css = render_to_string("records/pdf/pdf.css", {"clinic": mark_safe(clinic)})  # noqa: S308
    return CSS(string=css)


def _fetcher() -> Any:
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols={"data"}, timeout=1)


def html_to_pdf(html: str, *, language: str) -> bytes:
    from weasyprint import HTML

    return HTML(string=html, base_url=None, url_fetcher=_fetcher()).write_pdf(
        stylesheets=[_stylesheet(language)]
    )


def render_html(
    document: Document, *, verification_code: str, language: str, now: datetime | None = None
) -> str:
    template = TEMPLATES.get(document.kind)
    if template is None:
        raise RenderFailed("render_failed")
    with translation.override(language):
        context = document_context(
            document, verification_code=verification_code, now=now or timezone.now()
        )
        context["language"] = language
        return render_to_string(template, context)


def render_document(
    document: Document, *, verification_code: str, language: str = "ru", now: datetime | None = None
) -> bytes:
    """The PDF of one document, in `language`, with `verification_code` printed on it."""
    html = render_html(document, verification_code=verification_code, language=language, now=now)
    try:
        return html_to_pdf(html, language=language)
    except RenderFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - WeasyPrint and its libraries raise many types
        raise RenderFailed("render_failed") from exc


__all__ = [
    "RenderFailed",
    "document_context",
    "format_code",
    "html_to_pdf",
    "render_document",
    "render_html",
    "verification_url",
]
