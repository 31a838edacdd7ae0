"""A whole patient record for the data-rights tests, built through the services (the
path production data takes): every kind of item the exports hold, plus items the patient
must never receive (marked with canary words that must not appear in an export)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.models import ConsentKind, Role
from records import services, services_care
from records import services_documents as documents
from records.models import ReleasePolicy, TestType
from tests import factories
from tests.records.care_helpers import prescription, renewal, upcoming_appointment
from tests.records.helpers import receive
from tests.records.helpers_documents import pdf_bytes, upload_file

# Words that exist only in what the patient may not see.
CANARY_INTERNAL_NOTE = "CANARYINTERNALNOTE"
CANARY_UNRELEASED_RESULT = "CANARYUNRELEASEDRESULT"
CANARY_UNRELEASED_VISIT = "CANARYUNRELEASEDVISIT"
CANARY_UNRELEASED_DOCUMENT = "CANARYUNRELEASEDDOCUMENT"
CANARIES = (
    CANARY_INTERNAL_NOTE,
    CANARY_UNRELEASED_RESULT,
    CANARY_UNRELEASED_VISIT,
    CANARY_UNRELEASED_DOCUMENT,
)

EMAIL = "vera.export@example.org"
PHONE = "+7 912 555-01-02"
ADDRESS = "Москва, ул. Тверская, 7, кв. 3"
SNILS = factories.valid_snils(7_777)
PASSPORT = "4510 123456"


@dataclass
class Record:
    patient: Any
    doctor: Any
    appointment: Any
    visit: Any
    hidden_visit: Any
    report: Any
    coded_report: Any
    hidden_report: Any
    document: Any
    upload: Any
    hidden_document: Any
    prescription: Any
    renewal: Any
    vaccination: Any
    care_plan: Any
    intake: Any

    @property
    def profile(self) -> Any:
        return self.patient.patient_profile


def build_record(*, email: str = EMAIL, media: Any = None) -> Record:
    patient = factories.make_patient(
        email=email,
        first_name="Вера",
        last_name="Экспортова",
        phone=PHONE,
        language="en",
        snils=SNILS,
        passport=PASSPORT,
        address=ADDRESS,
        sex="female",
        insurance_policy="7700000000000001",
    )
    profile = patient.patient_profile
    account_services.consent_give(by=patient, profile=profile, kind=ConsentKind.TELEMEDICINE)
    account_services.identity_scan_upload(
        by=patient,
        profile=profile,
        upload=SimpleUploadedFile("s.pdf", b"%PDF-1.4 scan", content_type="application/pdf"),
    )
    doctor = factories.make_staff(Role.DOCTOR, full_name="Ирина Соколова", language="en")
    doctor.staff_profile.department = None
    doctor.staff_profile.save()
    appointment = upcoming_appointment(patient, doctor, days=3)  # grants the doctor access

    visit = services.visit_create(
        by=doctor,
        patient=profile,
        summary="Давление в норме, продолжать терапию.",
        diagnoses=[{"code": "I10", "text": "Эссенциальная гипертензия"}],
        started_at=timezone.now() - timedelta(hours=2),
        ended_at=timezone.now() - timedelta(hours=1),
    )
    services.visit_note_add(by=doctor, visit=visit, text="Пить больше воды.", internal=False)
    services.visit_note_add(by=doctor, visit=visit, text=CANARY_INTERNAL_NOTE, internal=True)
    visit = services.visit_release(by=doctor, visit=visit)
    hidden_visit = services.visit_create(
        by=doctor, patient=profile, summary=CANARY_UNRELEASED_VISIT, started_at=timezone.now()
    )

    report = receive(patient, "glucose", ["7.4"], days_ago=5)  # released at once, high
    hidden_report = receive(patient, "hba1c", ["6.9"], conclusion=CANARY_UNRELEASED_RESULT)
    assert not hidden_report.released
    urine, _ = TestType.objects.get_or_create(
        code="urinalysis",
        defaults={
            "name_ru": "Общий анализ мочи",
            "name_en": "Urinalysis",
            "loinc_code": "24356-8",
            "release_policy": ReleasePolicy.IMMEDIATE,
        },
    )
    coded_report = services.lab_report_receive(
        by=None,
        patient=profile,
        test_type=urine,
        observations=[
            {
                "loinc_code": "5778-6",
                "name": "Color of Urine",
                "value_text": "соломенно-жёлтый",
            },
            {
                "loinc_code": "5804-0",
                "name": "Protein [Mass/volume] in Urine by Test strip",
                "value_code": "260385009",
                "value_display": "Negative",
                "interpretation": "N",
                "reference_text": "negative",
            },
        ],
        conclusion="Без особенностей.",
    )

    document = documents.document_issue(
        by=doctor,
        patient=profile,
        kind="referral",
        title="Направление к кардиологу",
        body="Прошу проконсультировать.",
        release=True,
    )
    hidden_document = documents.document_issue(
        by=doctor,
        patient=profile,
        kind="certificate",
        title=CANARY_UNRELEASED_DOCUMENT,
        body=CANARY_UNRELEASED_DOCUMENT,
        release=False,
    )
    upload = documents.document_upload(
        by=patient, patient=profile, upload=upload_file(pdf_bytes(), "analysis.pdf"), title="Анализ"
    )

    rx = prescription(patient, doctor, medication="Лизиноприл", dosage="10 мг утром", repeats=2)
    rq = renewal(patient, rx)
    vaccination = services_care.vaccination_record(
        by=doctor,
        patient=profile,
        vaccine="Спутник V",
        given_on=date.today() - timedelta(days=300),
        dose_number=2,
        lot="II-1234",
    )
    care_plan = services_care.care_plan_create(
        by=doctor,
        patient=profile,
        condition="Гипертензия",
        instructions="Измерять давление утром и вечером.",
        review_date=date.today() + timedelta(days=90),
    )
    intake = services_care.intake_form_submit(
        by=patient, appointment=appointment, reason="Контроль давления", allergies="Пенициллин"
    )
    # The doctor opens the record: an access-log entry the patient sees.
    account_selectors.patient_record_get_for(doctor, profile.pk)
    return Record(
        patient=patient,
        doctor=doctor,
        appointment=appointment,
        visit=visit,
        hidden_visit=hidden_visit,
        report=report,
        coded_report=coded_report,
        hidden_report=hidden_report,
        document=document,
        upload=upload,
        hidden_document=hidden_document,
        prescription=rx,
        renewal=rq,
        vaccination=vaccination,
        care_plan=care_plan,
        intake=intake,
    )


def resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def decimal(value: Any) -> Decimal:
    return Decimal(str(value))
