"""The patient's data export as a readable PDF: what records.export collects, laid out
by the template records/pdf/export.html with the clinic's PDF stylesheet and WeasyPrint
setup (records.pdf: DejaVu fonts for Cyrillic, no resource fetched while rendering).
Rendered by a worker (records.tasks_data_rights), never in a request."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.utils import formats, translation

from accounts.models import PatientProfile
from accounts.templatetags.access_log import audit_subject, role_label
from accounts.validators import format_passport, format_snils
from records import presentation
from records.export import ExportData, collect
from records.models import INTAKE_FIELDS, IntakeForm, IntakeStatus, LabReport, UploadState

# The PDF lists at most this many entries of the access log (newest first); the FHIR
# export and the "Who opened my record" page have them all.
PDF_ACCESS_LOG_LIMIT = 500


def _staff_name(user: Any) -> str:
    staff = getattr(user, "staff_profile", None) if user is not None else None
    if staff is None:
        return ""
    specialty = staff.specialty.name if staff.specialty_id else staff.title
    return f"{staff.full_name}, {specialty}" if specialty else staff.full_name


def _when(value: datetime | None, fmt: str = "j E Y, H:i") -> str:
    return presentation.local_time(value, fmt)


def _day(value: date | None) -> str:
    return formats.date_format(value, "j E Y") if value else ""


def _rows_of(report: LabReport) -> list[dict[str, Any]]:
    from records.pdf import PDF_FLAG_GLYPHS

    rows = []
    for obs in report.observations.all():
        flag = presentation.flag_of(obs.interpretation)
        rows.append(
            {
                "name": obs.name,
                "value": presentation.value_text(obs) or "\u2014",
                "unit": obs.unit,
                "range": presentation.reference_range(obs) or "\u2014",
                "flag_glyph": PDF_FLAG_GLYPHS.get(obs.interpretation, ""),
                "flag_label": flag.label if flag else "",
                "abnormal": bool(flag and flag.abnormal),
                "note": obs.note,
            }
        )
    return rows


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in (text or "").replace("\r\n", "\n").split("\n\n") if p.strip()]


def pdf_context(data: ExportData) -> dict[str, Any]:
    """What records/pdf/export.html shows, formatted in the active language."""
    from accounts.models import Location
    from records.models import MEDICAL_RECORD_RETENTION_YEARS

    profile, user = data.profile, data.user
    log = data.access_log[:PDF_ACCESS_LOG_LIMIT]
    newest_consent: dict[str, int] = {}
    for record in data.consents:
        newest_consent.setdefault(record.kind, record.pk)
    return {
        "clinic_name": settings.CLINIC_NAME,
        "location": Location.objects.order_by("pk").first(),
        "generated": _when(data.generated_at),
        "patient_name": profile.full_name(),
        "profile": profile,
        "birth_date": _day(profile.birth_date),
        "sex": profile.get_sex_display() if profile.sex else "",
        "email": user.email,
        "snils": format_snils(profile.snils) if profile.snils else "",
        "passport": format_passport(profile.passport) if profile.passport else "",
        "language_label": user.get_language_display(),
        "consents": [
            {
                "title": record.text.title,
                "version": record.text.version,
                "decision": record.get_decision_display(),
                "when": _when(record.decided_at),
                "current": newest_consent.get(record.kind) == record.pk,
            }
            for record in data.consents
        ],
        "appointments": [
            {
                "when": presentation.visit_time(a.starts_at, a.location),
                "doctor": _staff_name(a.doctor),
                "service": a.consultation_type.name,
                "location": a.location.name,
                "status": a.get_status_display(),
                "note": a.patient_note,
            }
            for a in data.appointments
        ],
        "visits": [
            {
                "when": presentation.visit_time(v.started_at, v.location),
                "doctor": _staff_name(v.doctor),
                "location": v.location.name if v.location else "",
                "diagnoses": [
                    {"code": d.code, "text": d.text, "kind": d.get_kind_display()}
                    for d in v.diagnoses.all()
                ],
                "summary": _paragraphs(v.summary),
                "notes": [
                    {"when": _when(n.created_at), "paragraphs": _paragraphs(n.text)}
                    for n in getattr(v, "patient_notes", [])
                ],
            }
            for v in data.visits
        ],
        "reports": [
            {
                "name": r.test_type.name,
                "issued": _when(r.issued_at),
                "collected": _when(r.collected_at),
                "status": r.get_status_display(),
                "performer": r.performer,
                "conclusion": _paragraphs(r.conclusion),
                "comment": _paragraphs(r.review_comment),
                "reviewer": _staff_name(r.reviewed_by),
                "rows": _rows_of(r),
            }
            for r in data.reports
        ],
        "documents": [
            {
                "title": d.title,
                "kind": d.get_kind_display(),
                "created": _when(d.created_at),
                "author": _staff_name(d.author) if d.author_id and d.author_id != user.pk else "",
                "state": d.get_review_state_display() if d.is_upload else "",
                "reason": d.review_reason if d.review_state == UploadState.REJECTED else "",
                "size": d.size,
                "content_type": d.content_type,
            }
            for d in data.documents
        ],
        "prescriptions": [
            {
                "medication": p.medication,
                "dosage": p.dosage,
                "instructions": p.instructions,
                "status": p.get_status_display(),
                "issued": _when(p.issued_at, "j E Y"),
                "valid_until": _day(p.valid_until),
                "prescriber": _staff_name(p.prescriber),
                "repeats": f"{p.repeats_used}/{p.repeats_allowed}" if p.is_repeat else "",
            }
            for p in data.prescriptions
        ],
        "renewals": [
            {
                "medication": r.prescription.medication,
                "submitted": _when(r.submitted_at),
                "status": r.get_status_display(),
                "dosage": r.confirmed_dosage,
                "pharmacy": r.pharmacy,
                "notes": r.notes,
                "reason": r.rejection_reason,
            }
            for r in data.renewals
        ],
        "vaccinations": [
            {
                "vaccine": v.vaccine,
                "given": _day(v.given_on),
                "dose": v.dose_number,
                "lot": v.lot,
                "notes": v.notes,
            }
            for v in data.vaccinations
        ],
        "care_plans": [
            {
                "condition": c.condition,
                "instructions": _paragraphs(c.instructions),
                "start": _day(c.start_date),
                "review": _day(c.review_date),
                "active": c.active,
                "doctor": _staff_name(c.doctor),
            }
            for c in data.care_plans
        ],
        "intake_forms": [
            {
                "when": _when(f.submitted_at or f.updated_at),
                "submitted": f.status == IntakeStatus.SUBMITTED,
                "answers": [
                    (str(IntakeForm._meta.get_field(name).verbose_name), getattr(f, name))
                    for name in INTAKE_FIELDS
                    if (getattr(f, name) or "").strip()
                ],
            }
            for f in data.intake_forms
        ],
        "access_log": [
            {
                "when": _when(e.occurred_at),
                "who": (e.actor.staff_profile.full_name if _has_staff(e.actor) else ""),
                "role": role_label(e.actor_role),
                "action": e.get_action_display(),
                "what": audit_subject(e),
                "break_glass": e.break_glass,
                "reason": e.reason if e.break_glass else "",
            }
            for e in log
        ],
        "access_log_total": len(data.access_log),
        "access_log_limit": PDF_ACCESS_LOG_LIMIT,
        "requests": [
            {
                "kind": r.get_kind_display(),
                "requested": _when(r.requested_at),
                "status": r.get_status_display(),
            }
            for r in data.requests
        ],
        "retention_years": MEDICAL_RECORD_RETENTION_YEARS,
    }


def _has_staff(user: Any) -> bool:
    return user is not None and getattr(user, "staff_profile", None) is not None


def render(profile: PatientProfile, *, language: str, now: datetime | None = None) -> bytes:
    """The readable PDF of everything the patient may see, in `language`."""
    from django.template.loader import render_to_string

    from records.pdf import html_to_pdf

    with translation.override(language):
        data = collect(profile, now=now)
        context = pdf_context(data)
        context["language"] = language
        html = render_to_string("records/pdf/export.html", context)
    return html_to_pdf(html, language=language)
