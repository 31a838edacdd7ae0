"""Demo records for `seed_demo`: visits and lab results of a few demo patients.

`seed_records_demo()` is idempotent: reports carry fixed identifiers (source "demo"), so
a second run finds them unchanged; a patient who already has visits gets no new ones.
Everything goes through records.services, the path real data takes.

- patient01 with doctor01 (therapist): diabetes follow-up — five HbA1c results over
  two years (four reviewed and released, the newest waiting in doctor01's review queue),
  fasting glucose and blood counts (released at once), two released visits with
  patient-visible and internal notes.
- patient02 with doctor03 (cardiologist): a lipid panel waiting for review, an earlier
  one reviewed and released, one released visit.
- patient03 with doctor01: a released blood count and creatinine, a TSH waiting for review.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import policies
from accounts import services as account_services
from accounts.models import User
from records import catalogue, services
from records.models import LabReport, ReviewState, TestType, Visit

DOMAIN = "clinic.test"
PERFORMER = "Лаборатория клиники, ул. Тверская, 12"

# (patient n, doctor n, test code, months ago, values, doctor's comment or "" to leave
# it in the review queue)
REPORTS = [
    (1, 1, "hba1c", 24, ["8.4"], "HbA1c высокий. Начинаем метформин, контроль через 6 месяцев."),
    (1, 1, "hba1c", 18, ["7.6"], "Снижается. Продолжайте лечение и диету."),
    (1, 1, "hba1c", 12, ["7.0"], "Хорошая динамика."),
    (1, 1, "hba1c", 6, ["6.5"], "Почти у цели. Продолжайте."),
    (1, 1, "hba1c", 0, ["6.2"], ""),
    (1, 1, "glucose", 24, ["9.1"], None),
    (1, 1, "glucose", 12, ["7.2"], None),
    (1, 1, "glucose", 6, ["6.4"], None),
    (1, 1, "glucose", 0, ["5.8"], None),
    (1, 1, "cbc", 6, ["118", "6.2", "240"], None),
    (1, 1, "cbc", 0, ["131", "5.8", "255"], None),
    (2, 3, "lipid-panel", 9, ["6.8", "0.9", "4.6", "2.3"], "Холестерин высокий: диета, статин."),
    (2, 3, "lipid-panel", 0, ["5.6", "1.1", "3.4", "1.8"], ""),
    (3, 1, "cbc", 1, ["142", "7.1", "210"], None),
    (3, 1, "creatinine", 1, ["98"], None),
    (3, 1, "tsh", 0, ["5.1"], ""),
]

# (patient n, doctor n, months ago, ICD-10 code, diagnosis, summary, patient note,
# internal note)
VISITS = [
    (
        1,
        1,
        24,
        "E11.9",
        "Сахарный диабет 2 типа без осложнений",
        "Впервые выявлен сахарный диабет 2 типа. Назначен метформин 500 мг 2 раза в день.",
        "Сдайте гликированный гемоглобин через 6 месяцев. Школа диабета — по средам.",
        "Наследственность отягощена. Обсудить направление к эндокринологу при HbA1c > 7,5 %.",
    ),
    (
        1,
        1,
        6,
        "E11.9",
        "Сахарный диабет 2 типа без осложнений",
        "Компенсация улучшается. Лечение без изменений.",
        "Продолжайте приём метформина. Следующий визит через 6 месяцев.",
        "Приверженность лечению хорошая.",
    ),
    (
        2,
        3,
        9,
        "E78.0",
        "Чистая гиперхолестеринемия",
        "Повышен холестерин ЛПНП. Назначены диета и аторвастатин 20 мг.",
        "Повторите липидный профиль через 6–9 месяцев.",
        "Семейный анамнез ИБС. Рассмотреть ЭхоКГ.",
    ),
]


def _at(months_ago: int, hour: int = 9) -> datetime:
    zone = ZoneInfo(settings.CLINIC_TIME_ZONE)
    day = timezone.localdate(timezone=zone) - timedelta(days=30 * months_ago + 2)
    return datetime.combine(day, time(hour, 30), tzinfo=zone)


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


@transaction.atomic
def seed_records_demo() -> dict[str, int]:
    """Create the demo visits and results that are missing. Returns what was created,
    e.g. {"test types": 6, "visits": 3, "lab reports": 16}. Needs the demo patients and
    doctors of seed_demo; patients or doctors that are missing are skipped."""
    counts = {"test types": 0, "visits": 0, "lab reports": 0}
    codes = {spec.code for spec in catalogue.TEST_TYPES}
    existing = set(TestType.objects.filter(code__in=codes).values_list("code", flat=True))
    types = catalogue.test_types_ensure()
    counts["test types"] = len(codes - existing)

    had_visits: dict[int, bool] = {}
    for patient_n, doctor_n, months, code, text, summary, public_note, internal_note in VISITS:
        patient, doctor = _user("patient", patient_n), _user("doctor", doctor_n)
        if patient is None or doctor is None:
            continue
        if patient_n not in had_visits:
            had_visits[patient_n] = Visit.objects.filter(patient=patient.patient_profile).exists()
        if had_visits[patient_n]:
            continue
        _ensure_care(doctor, patient)
        started = _at(months, 10)
        visit = services.visit_create(
            by=doctor,
            patient=patient.patient_profile,
            started_at=started,
            ended_at=started + timedelta(minutes=30),
            location=doctor.staff_profile.location,
            summary=summary,
            diagnoses=[{"code": code, "text": text}],
        )
        services.visit_note_add(by=doctor, visit=visit, text=public_note, internal=False)
        services.visit_note_add(by=doctor, visit=visit, text=internal_note, internal=True)
        services.visit_release(by=doctor, visit=visit)
        counts["visits"] += 1

    for n, (patient_n, doctor_n, code, months, values, comment) in enumerate(REPORTS, start=1):
        patient, doctor = _user("patient", patient_n), _user("doctor", doctor_n)
        if patient is None or doctor is None:
            continue
        _ensure_care(doctor, patient)
        external_id = f"demo-{patient_n:02d}-{n:02d}"
        if LabReport.objects.filter(source="demo", external_id=external_id).exists():
            continue
        issued = _at(months, 15)
        visit = Visit.objects.filter(
            patient=patient.patient_profile, started_at=_at(months, 10)
        ).first()
        report = services.lab_report_receive(
            by=None,
            patient=patient.patient_profile,
            test_type=types[code],
            observations=catalogue.observations(code, values),
            issued_at=issued,
            collected_at=issued - timedelta(hours=6),
            performer=PERFORMER,
            visit=visit,
            ordered_by=doctor,
            source="demo",
            external_id=external_id,
        )
        counts["lab reports"] += 1
        if comment and report.review_state == ReviewState.PENDING:
            services.lab_report_review(by=doctor, report=report, comment=comment, release=True)
    return counts
