"""Building records test data through the services (the path production data takes)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from accounts import services as account_services
from records import catalogue, services
from records.models import LabReport, ReportStatus, TestType


def test_types() -> dict[str, TestType]:
    return catalogue.test_types_ensure()


test_types.__test__ = False  # a helper, not a test


def grant(doctor, patient) -> None:  # noqa: ANN001
    account_services.care_access_grant(
        by=None, doctor=doctor, patient=patient.patient_profile, reason="appointment"
    )


def receive(
    patient,  # noqa: ANN001
    code: str = "glucose",
    values: object = None,
    *,
    days_ago: float = 0,
    status: str = ReportStatus.FINAL,
    **kwargs: object,
) -> LabReport:
    """A report of a catalogue test for a patient (a user), issued `days_ago`."""
    types = test_types()
    spec = catalogue.spec_of(code)
    if values is None:
        values = [
            a.low + (a.high - a.low) / 2 if a.low and a.high else Decimal("1.0")
            for a in spec.analytes
        ]
    issued = timezone.now() - timedelta(days=days_ago)
    return services.lab_report_receive(
        by=None,
        patient=patient.patient_profile,
        test_type=types[code],
        observations=catalogue.observations(code, values),
        status=status,
        issued_at=issued,
        collected_at=issued - timedelta(hours=3),
        performer="Лаборатория «Гемотест»",
        **kwargs,
    )
