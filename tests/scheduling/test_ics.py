"""The appointment's .ics file: RFC 5545 shape, no medical content. (The confirmation
email that carries it: tests/notifications/test_messages.py.)"""

from __future__ import annotations

from datetime import UTC

import pytest

from scheduling import ics, services
from tests.scheduling.test_patient_booking import Clinic, make_clinic

pytestmark = pytest.mark.django_db
MEDICAL = (
    "General practitioner",
    "Терапевт",
    "Initial consultation",
    "Первичный приём",
    "Olga Petrova",
    "Knee pain",
)


@pytest.fixture
def clinic(db) -> Clinic:
    return make_clinic()


def book(clinic: Clinic, patient, index: int = 0):
    slot = clinic.slots(days_ahead=2)[index]
    return services.appointment_book_slot(
        by=patient,
        patient=patient.patient_profile,
        doctor=clinic.doctor,
        consultation_type=clinic.ctype,
        starts_at=slot.start,
        patient_note="Knee pain",
    )


def unfold(data: bytes) -> list[str]:
    text = data.decode("utf-8")
    assert "\n" not in text.replace("\r\n", "")  # CRLF only
    return text.replace("\r\n ", "").split("\r\n")[:-1]


def test_ics_is_rfc5545_with_no_medical_content(clinic, patient, settings):
    settings.SITE_URL = "https://portal.clinic.test"
    location = clinic.location
    location.address = "Улица Ленина, дом 1, корпус 2, строение 3, подъезд 4; вход со двора, 2 этаж"
    location.save()
    appointment = book(clinic, patient)
    appointment.refresh_from_db()
    data = ics.appointment_ics(appointment, language="en")
    raw_lines = data.decode("utf-8").split("\r\n")
    assert all(len(line.encode("utf-8")) <= 75 for line in raw_lines)
    assert any(line.startswith(" ") for line in raw_lines)  # the long LOCATION was folded
    lines = unfold(data)
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    fields = dict(line.split(":", 1) for line in lines)
    assert fields["VERSION"] == "2.0" and fields["PRODID"]
    assert fields["UID"] == f"{appointment.public_id}@portal.clinic.test"
    start = appointment.starts_at.astimezone(UTC)
    assert fields["DTSTART"] == start.strftime("%Y%m%dT%H%M%SZ")
    assert fields["DTEND"].endswith("Z") and fields["DTSTAMP"].endswith("Z")
    assert fields["SUMMARY"] == "Appointment at Clinic Network"
    assert fields["LOCATION"].startswith("Clinic on Lenina\\, Улица Ленина\\, дом 1")
    assert "вход со двора\\; 2 этаж" not in fields["LOCATION"]  # ";" escaped, "," too
    assert "\\;" in fields["LOCATION"]
    body = data.decode("utf-8")
    for word in MEDICAL:
        assert word not in body
    assert "BEGIN:VEVENT" in lines and "END:VEVENT" in lines


def test_fold_never_splits_a_character():
    line = "LOCATION:" + "ж" * 100
    folded = ics.fold(line)
    for part in folded.split("\r\n"):
        assert len(part.encode("utf-8")) <= 75
        part.encode("utf-8").decode("utf-8")
    assert folded.replace("\r\n ", "") == line
