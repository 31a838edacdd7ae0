"""Demo prescriptions, renewals, care plans and vaccinations for `seed_demo`.

`seed_care_demo()` is idempotent: each part is created only for a patient who has none
of it yet. Everything goes through records.services_care, the path real data takes.
Needs the demo patients and doctors of seed_demo; missing ones are skipped.

- patient01 with doctor01 (therapist): metformin (a repeat, one renewal completed and a
  new request waiting in doctor01's renewal queue), lisinopril (a repeat), a one-off
  antibiotic course finished long ago; a care plan for type 2 diabetes; flu, COVID-19
  and tetanus vaccinations.
- patient02 with doctor03 (cardiologist): atorvastatin (a repeat, its renewal approved
  and ready to collect); a care plan for high cholesterol; a flu vaccination.
- patient03 with doctor01: levothyroxine (a repeat); a pneumococcal vaccination.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts import policies
from accounts import services as account_services
from accounts.models import User
from records import services_care
from records.models import CarePlan, Prescription, PrescriptionStatus, Vaccination

DOMAIN = "clinic.test"

# (patient n, doctor n, medication, dosage, instructions, repeats, months ago,
#  renewal steps: a list of requests, each the actions taken on it after submission)
PRESCRIPTIONS = [
    (
        1,
        1,
        "Метформин 500 мг, таблетки",
        "500 мг 2 раза в день",
        "Во время еды или сразу после. Не пропускайте приём.",
        6,
        18,
        [["start_review", "approve", "mark_sent", "complete"], []],
    ),
    (
        1,
        1,
        "Лизиноприл 10 мг, таблетки",
        "10 мг 1 раз в день утром",
        "Измеряйте давление утром и вечером, записывайте в дневник.",
        3,
        6,
        [],
    ),
    (1, 1, "Амоксициллин 500 мг, капсулы", "500 мг 3 раза в день, 7 дней", "", 0, 20, []),
    (
        2,
        3,
        "Аторвастатин 20 мг, таблетки",
        "20 мг 1 раз в день вечером",
        "Контроль липидного профиля через 3 месяца.",
        4,
        9,
        [["start_review", "approve", "mark_ready"]],
    ),
    (
        3,
        1,
        "Левотироксин 50 мкг, таблетки",
        "50 мкг утром натощак",
        "За 30 минут до завтрака, запивать водой.",
        5,
        2,
        [],
    ),
]

CARE_PLANS = [
    (
        1,
        1,
        "Сахарный диабет 2 типа",
        "1. Метформин 500 мг 2 раза в день во время еды.\n"
        "2. Глюкоза натощак — 2 раза в неделю, записывайте в дневник.\n"
        "3. Гликированный гемоглобин — каждые 6 месяцев.\n"
        "4. Ходьба 30 минут в день, ограничьте сладкое и белый хлеб.\n"
        "5. Осмотр стоп и глазного дна — раз в год.\n"
        "Если глюкоза выше 13 ммоль/л или ниже 4 ммоль/л — позвоните в клинику.",
        24,
        3,
    ),
    (
        2,
        3,
        "Гиперхолестеринемия",
        "1. Аторвастатин 20 мг вечером ежедневно.\n"
        "2. Меньше жирного мяса и сливочного масла, больше овощей и рыбы.\n"
        "3. Липидный профиль и печёночные пробы — через 3 месяца.\n"
        "При болях в мышцах — сообщите врачу.",
        9,
        2,
    ),
]

# (patient n, recorded by doctor n, vaccine, months ago, dose, lot)
VACCINATIONS = [
    (1, 1, "Грипп (Совигрипп)", 4, 1, "SG-2025-114"),
    (1, 1, "COVID-19 (Спутник V)", 30, 2, "SV-II-0871"),
    (1, 1, "АДС-М (дифтерия, столбняк)", 60, 1, "ADSM-5512"),
    (2, 3, "Грипп (Ультрикс Квадри)", 5, 1, "UQ-2025-031"),
    (3, 1, "Пневмококковая (Превенар 13)", 12, 1, "PR13-7720"),
]


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


def _months_ago(months: int) -> timedelta:
    return timedelta(days=30 * months)


@transaction.atomic
def seed_care_demo() -> dict[str, int]:
    """Create the demo prescriptions (with their renewal requests), care plans and
    vaccinations that are missing. Returns what was created, e.g.
    {"prescriptions": 5, "renewal requests": 3, "care plans": 2, "vaccinations": 5}."""
    counts = {"prescriptions": 0, "renewal requests": 0, "care plans": 0, "vaccinations": 0}
    now = timezone.now()
    today = timezone.localdate()

    had: dict[int, bool] = {}
    for patient_n, doctor_n, medication, dosage, text, repeats, months, requests in PRESCRIPTIONS:
        patient, doctor = _user("patient", patient_n), _user("doctor", doctor_n)
        if patient is None or doctor is None:
            continue
        if patient_n not in had:
            had[patient_n] = Prescription.objects.filter(patient=patient.patient_profile).exists()
        if had[patient_n]:
            continue
        _ensure_care(doctor, patient)
        rx = services_care.prescription_create(
            by=doctor,
            patient=patient.patient_profile,
            medication=medication,
            dosage=dosage,
            instructions=text,
            is_repeat=repeats > 0,
            repeats_allowed=repeats,
            valid_until=today + timedelta(days=365) if repeats else None,
            issued_at=now - _months_ago(months),
        )
        if not repeats:
            services_care.prescription_end(
                by=doctor, prescription=rx, status=PrescriptionStatus.COMPLETED
            )
        counts["prescriptions"] += 1
        for steps in requests:
            renewal = services_care.renewal_request_submit(
                by=patient,
                prescription=rx,
                confirmed_dosage=dosage,
                pharmacy="Аптека «Ригла», Москва, ул. Садовая, 5",
                notes="Переношу хорошо, побочных эффектов нет.",
            )
            for action in steps:
                renewal = services_care.RENEWAL_ACTIONS[action](by=doctor, renewal=renewal)
            counts["renewal requests"] += 1

    for patient_n, doctor_n, condition, instructions, months, review_in in CARE_PLANS:
        patient, doctor = _user("patient", patient_n), _user("doctor", doctor_n)
        if patient is None or doctor is None:
            continue
        if CarePlan.objects.filter(patient=patient.patient_profile).exists():
            continue
        _ensure_care(doctor, patient)
        services_care.care_plan_create(
            by=doctor,
            patient=patient.patient_profile,
            condition=condition,
            instructions=instructions,
            start_date=today - _months_ago(months),
            review_date=today + _months_ago(review_in),
        )
        counts["care plans"] += 1

    done: dict[int, bool] = {}
    for patient_n, doctor_n, vaccine, months, dose, lot in VACCINATIONS:
        patient, doctor = _user("patient", patient_n), _user("doctor", doctor_n)
        if patient is None or doctor is None:
            continue
        if patient_n not in done:
            done[patient_n] = Vaccination.objects.filter(patient=patient.patient_profile).exists()
        if done[patient_n]:
            continue
        _ensure_care(doctor, patient)
        services_care.vaccination_record(
            by=doctor,
            patient=patient.patient_profile,
            vaccine=vaccine,
            given_on=today - _months_ago(months),
            dose_number=dose,
            lot=lot,
        )
        counts["vaccinations"] += 1
    return counts
