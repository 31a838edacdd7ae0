"""Building prescription, renewal and intake test data through the services (the path
production data takes)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts import services as account_services
from records import services_care
from records.models import Prescription, RenewalRequest
from tests import factories


def grant(doctor, patient) -> None:  # noqa: ANN001
    account_services.care_access_grant(
        by=None, doctor=doctor, patient=patient.patient_profile, reason="appointment"
    )


def prescription(
    patient,  # noqa: ANN001
    doctor,  # noqa: ANN001
    *,
    medication: str = "Лизиноприл",
    dosage: str = "10 мг 1 раз в день",
    repeats: int = 3,
    **kwargs: object,
) -> Prescription:
    """A prescription by a doctor in charge of the patient (granted here if needed)."""
    from accounts import policies

    if not policies.has_care_relationship(doctor, patient.patient_profile):
        grant(doctor, patient)
    return services_care.prescription_create(
        by=doctor,
        patient=patient.patient_profile,
        medication=medication,
        dosage=dosage,
        instructions=kwargs.pop("instructions", "Утром, до еды."),
        is_repeat=repeats > 0,
        repeats_allowed=repeats,
        **kwargs,
    )


def renewal(patient, rx: Prescription, **kwargs: object) -> RenewalRequest:  # noqa: ANN001
    return services_care.renewal_request_submit(
        by=patient,
        prescription=rx,
        confirmed_dosage=kwargs.pop("confirmed_dosage", rx.dosage),
        pharmacy=kwargs.pop("pharmacy", "Аптека «Ригла», ул. Садовая, 5"),
        notes=kwargs.pop("notes", "Переношу хорошо."),
    )


def upcoming_appointment(patient, doctor, *, days: int = 1, index: int = 0):  # noqa: ANN001, ANN201
    """A booked appointment of the patient with the doctor `days` from today (the
    booking grants the doctor care access)."""
    from scheduling import services as scheduling
    from scheduling.availability import free_slots

    if not doctor.working_hours.exists():
        factories.make_working_week(doctor)
    ctype = doctor.consultation_types.first() or factories.make_consultation_type(doctor)
    day = timezone.localdate() + timedelta(days=days)
    slot = free_slots([doctor.pk], day, 1, consultation_type=ctype)[doctor.pk][index]
    return scheduling.appointment_book_slot(
        by=None,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slot.start,
    )
