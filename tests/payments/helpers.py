"""Building blocks for payments' tests: a clinic with a prepaid consultation type and a
slot held for a patient, as scheduling's services make them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.models import Role
from scheduling import availability
from scheduling import services as scheduling_services
from scheduling.models import Appointment, ConsultationType
from tests import factories


@dataclass
class PaidClinic:
    doctor: object
    ctype: ConsultationType
    location: object

    def slot(self, days_ahead: int = 3, index: int = 0):
        day = timezone.localdate() + timedelta(days=days_ahead)
        return availability.free_slots([self.doctor.pk], day, 1, consultation_type=self.ctype)[
            self.doctor.pk
        ][index]

    def hold(self, patient_user, *, days_ahead: int = 3, index: int = 0) -> Appointment:
        slot = self.slot(days_ahead, index)
        return scheduling_services.appointment_hold(
            by=patient_user,
            patient=patient_user.patient_profile,
            doctor=self.doctor,
            consultation_type=self.ctype,
            starts_at=slot.start,
        )


def make_paid_clinic(**fields: object) -> PaidClinic:
    location = factories.make_location(code="paid")
    doctor = factories.make_staff(Role.DOCTOR, language="en", full_name="Olga Petrova")
    factories.make_working_week(doctor, location, start="08:00", end="20:00")
    ctype = factories.make_consultation_type(
        doctor,
        **{
            "prepayment_required": True,
            "price": Decimal("2500.00"),
            "free_cancellation_hours": 24,
            "late_cancellation_fee": Decimal("500.00"),
            **fields,
        },
    )
    return PaidClinic(doctor, ctype, location)
