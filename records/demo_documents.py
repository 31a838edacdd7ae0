"""Demo documents for `seed_demo`: `seed_documents_demo()`.

- patient01: a referral to an ophthalmologist from doctor01 (released), and a file the
  patient uploaded (results from another laboratory), waiting in the review queue of
  the clinicians in charge;
- patient02: a discharge summary from doctor03 (released), attached to their latest
  visit if they have one;
- patient03: a medical certificate from doctor01 (not yet released: the doctor sees it,
  the patient does not).

Idempotent: a patient who already has a document of that kind from that doctor (or an
upload of their own) gets no new one. Everything goes through
records.services_documents, the path real data takes. With `render=True` (the default)
the PDFs are rendered here and now, so the demo works before any worker runs; otherwise
the jobs wait for a worker.
"""

from __future__ import annotations

from django.core.files.base import ContentFile

from accounts import policies
from accounts import services as account_services
from accounts.models import User
from records import services_documents as services
from records.models import Document, DocumentKind, RenderState, Visit

DOMAIN = "clinic.test"

# (patient n, doctor n, kind, title, text, released)
DOCUMENTS = [
    (
        1,
        1,
        DocumentKind.REFERRAL,
        "Направление к офтальмологу",
        "Прошу провести осмотр глазного дна с широким зрачком.\n\n"
        "Диагноз: сахарный диабет 2 типа (E11.9), стаж 2 года, HbA1c 6,2 %.\n\n"
        "Цель: исключить диабетическую ретинопатию.",
        True,
    ),
    (
        2,
        3,
        DocumentKind.DISCHARGE_SUMMARY,
        "Выписной эпикриз",
        "Находилась на дневном стационаре кардиологического отделения 5 дней.\n\n"
        "Диагноз: гиперхолестеринемия (E78.0). Проведено: липидный профиль, ЭКГ, "
        "дуплексное сканирование сонных артерий.\n\n"
        "Рекомендовано: аторвастатин 20 мг вечером, диета с ограничением животных жиров, "
        "контроль липидного профиля через 3 месяца.",
        True,
    ),
    (
        3,
        1,
        DocumentKind.CERTIFICATE,
        "Справка для бассейна",
        "Противопоказаний к посещению бассейна не выявлено.",
        False,
    ),
]
UPLOAD_PATIENT = 1
UPLOAD_TITLE = "Анализы из лаборатории «Гемотест»"


def _user(kind: str, n: int) -> User | None:
    return (
        User.objects.select_related("patient_profile", "staff_profile")
        .filter(email=f"{kind}{n:02d}@{DOMAIN}")
        .first()
    )


def _ensure_care(doctor: User, patient: User) -> None:
    if not policies.has_care_relationship(doctor, patient.patient_profile):
        account_services.care_access_grant(
            by=None, doctor=doctor, patient=patient.patient_profile, reason="demo data"
        )


def _upload_pdf() -> ContentFile:
    from weasyprint import HTML

    data = HTML(
        string="<h1>Гемотест</h1><p>Общий анализ крови: гемоглобин 128 г/л, "
        "лейкоциты 6,1 × 10⁹/л, тромбоциты 240 × 10⁹/л.</p>"
    ).write_pdf()
    return ContentFile(data, name="gemotest.pdf")


def seed_documents_demo(*, render: bool = True) -> dict[str, int]:
    """Create the demo documents that are missing. Returns what was created, e.g.
    {"documents": 3, "uploads": 1, "rendered": 3}. Needs seed_demo's patients and
    doctors; missing ones are skipped."""
    counts = {"documents": 0, "uploads": 0, "rendered": 0}
    jobs: list[int] = []
    for patient_n, doctor_n, kind, title, body, released in DOCUMENTS:
        patient, doctor = _user("patient", patient_n), _user("doctor", doctor_n)
        if patient is None or doctor is None:
            continue
        profile = patient.patient_profile
        if Document.objects.filter(patient=profile, kind=kind, author=doctor).exists():
            continue
        _ensure_care(doctor, patient)
        visit = Visit.objects.filter(patient=profile, doctor=doctor).order_by("-started_at").first()
        document = services.document_issue(
            by=doctor,
            patient=profile,
            kind=kind,
            title=title,
            body=body,
            visit=visit,
            release=released,
        )
        counts["documents"] += 1
        jobs += list(document.renders.values_list("pk", flat=True))

    patient = _user("patient", UPLOAD_PATIENT)
    if (
        patient is not None
        and not Document.objects.filter(
            patient=patient.patient_profile, kind=DocumentKind.UPLOAD, uploaded_by=patient
        ).exists()
    ):
        services.document_upload(
            by=patient, patient=patient.patient_profile, upload=_upload_pdf(), title=UPLOAD_TITLE
        )
        counts["uploads"] += 1

    if render:
        for job_id in jobs:
            job = services.pdf_render_run(job_id=job_id)
            if job is not None and job.state == RenderState.READY:
                counts["rendered"] += 1
    return counts
