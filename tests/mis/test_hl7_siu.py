"""SIU -> appointments through scheduling's services: book (S12), move (S13/S14),
cancel (S15-S17), no-show (S26); the doctor found through a practitioner link."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.models import Role
from mis.models import ExternalLink, Hl7Reason, Hl7Source, Hl7State, LinkedKind
from mis.services_hl7 import hl7_ingest
from scheduling.models import Appointment, AppointmentSource, AppointmentStatus
from tests import factories
from tests.mis.hl7_support import (
    fixture_text,
    hl7_ts,
    link_doctor,
    link_patient_of,
    next_weekday_at,
    read_ack,
)

pytestmark = pytest.mark.django_db

SAMPLE_START, SAMPLE_END = "20210924093000+0215", "20210924102000+0215"
SYSTEM = "hl7:GHHSFacility"


@pytest.fixture
def clinic():
    patient = factories.make_patient()
    doctor = factories.make_staff(Role.DOCTOR)
    ctype = factories.make_consultation_type(doctor)
    factories.make_working_week(doctor)
    link_doctor(SYSTEM, "1210", doctor)
    link_patient_of(fixture_text("SIU-S12-01.hl7"), patient.patient_profile)
    return patient.patient_profile, doctor, ctype


def _siu(name: str, start, *, control_id: str | None = None) -> str:  # noqa: ANN001
    text = fixture_text(name)
    text = text.replace(SAMPLE_START, hl7_ts(start)).replace(
        SAMPLE_END, hl7_ts(start + timedelta(minutes=50))
    )
    if control_id:
        fields = text.split("|")
        fields[9] = control_id  # MSH-10
        text = "|".join(fields)
    return text


def _ingest(text: str):
    return hl7_ingest(raw=text, source=Hl7Source.MLLP, peer="127.0.0.1:50000")


def test_s12_books_then_s15_cancels(clinic):
    patient, doctor, ctype = clinic
    start = next_weekday_at(10)

    booked = _ingest(_siu("SIU-S12-01.hl7", start))

    row = booked.message_row
    assert (row.state, row.ack_code, row.produced_kind) == (Hl7State.APPLIED, "AA", "appointment")
    appointment = Appointment.objects.get(pk=row.produced_id)
    assert (appointment.patient, appointment.doctor, appointment.consultation_type) == (
        patient,
        doctor,
        ctype,
    )
    assert appointment.starts_at == start
    assert (appointment.status, appointment.source) == (
        AppointmentStatus.BOOKED,
        AppointmentSource.MIS,
    )
    link = ExternalLink.objects.get(kind=LinkedKind.APPOINTMENT, system=SYSTEM)
    assert (link.value, link.object_id, link.version) == ("36996", appointment.pk, "MSG00012")
    assert read_ack(booked.ack_text)["code"] == "AA"

    cancelled = _ingest(_siu("SIU-S15-01.hl7", start))

    assert cancelled.message_row.state == Hl7State.APPLIED, cancelled.message_row.reason
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    assert appointment.cancellation_reason == "Cancelled in the MIS"
    assert appointment.cancellation_fee == 0
    # The cancellation sent again changes nothing and is answered the same.
    again = _ingest(_siu("SIU-S15-01.hl7", start))
    assert again.message_row.state == Hl7State.DUPLICATE
    assert again.ack_text == cancelled.ack_text


def test_s13_moves_the_appointment_to_the_new_time(clinic):
    start = next_weekday_at(10)
    appointment_id = _ingest(_siu("SIU-S12-01.hl7", start)).message_row.produced_id
    later = start + timedelta(hours=1)

    moved = _ingest(_siu("SIU-S13-01.hl7", later))

    assert moved.message_row.state == Hl7State.APPLIED, moved.message_row.reason
    appointment = Appointment.objects.get(pk=appointment_id)
    assert appointment.starts_at == later
    assert appointment.status == AppointmentStatus.BOOKED
    assert Appointment.objects.count() == 1


def test_s12_sent_again_under_a_new_control_id_books_nothing_twice(clinic):
    start = next_weekday_at(11)
    first = _ingest(_siu("SIU-S12-01.hl7", start)).message_row

    second = _ingest(_siu("SIU-S12-01.hl7", start, control_id="MSG00012-B")).message_row

    assert second.state == Hl7State.APPLIED
    assert second.produced_id == first.produced_id
    assert Appointment.objects.count() == 1


def test_s26_marks_a_no_show(clinic):
    start = next_weekday_at(12)
    appointment_id = _ingest(_siu("SIU-S12-01.hl7", start)).message_row.produced_id

    row = _ingest(_siu("SIU-S26-01.hl7", start)).message_row

    assert row.state == Hl7State.APPLIED, row.reason
    assert Appointment.objects.get(pk=appointment_id).status == AppointmentStatus.NO_SHOW


def test_an_unlinked_doctor_is_rejected_with_a_reason(clinic):
    ExternalLink.objects.filter(kind=LinkedKind.PRACTITIONER).delete()

    result = _ingest(_siu("SIU-S12-01.hl7", next_weekday_at(10)))

    row = result.message_row
    assert (row.state, row.reason_code, row.ack_code) == (
        Hl7State.REJECTED,
        Hl7Reason.UNKNOWN_DOCTOR,
        "AR",
    )
    assert "AIP-3" in row.reason
    assert not Appointment.objects.exists()
    assert read_ack(result.ack_text)["code"] == "AR"


def test_a_time_the_doctor_does_not_work_is_rejected(clinic):
    row = _ingest(_siu("SIU-S12-01.hl7", next_weekday_at(20))).message_row

    assert (row.state, row.reason_code) == (Hl7State.REJECTED, Hl7Reason.SLOT_UNAVAILABLE)
    assert not Appointment.objects.exists()


def test_a_cancel_for_another_patients_appointment_is_refused(clinic):
    start = next_weekday_at(10)
    appointment_id = _ingest(_siu("SIU-S12-01.hl7", start)).message_row.produced_id
    other = factories.make_patient().patient_profile
    text = _siu("SIU-S15-01.hl7", start).replace("PATID1234^5^M11", "OTHER777^5^M11")
    link_patient_of(text, other)

    row = _ingest(text).message_row

    assert (row.state, row.reason_code) == (Hl7State.REJECTED, Hl7Reason.INVALID_DATA)
    assert Appointment.objects.get(pk=appointment_id).status == AppointmentStatus.BOOKED


def test_a_late_cancel_from_the_mis_is_the_clinics_and_costs_the_patient_nothing(clinic):
    """The clinic cancelling must never cost the patient the late-cancellation fee: a
    cancellation by the clinic's systems counts as the clinic's (free, refunded)."""
    from decimal import Decimal

    _patient, _doctor, ctype = clinic
    ctype.free_cancellation_hours = 24 * 7  # so three days ahead is already "late"
    ctype.late_cancellation_fee = Decimal("500.00")
    ctype.save()
    start = next_weekday_at(10)
    appointment_id = _ingest(_siu("SIU-S12-01.hl7", start)).message_row.produced_id

    row = _ingest(_siu("SIU-S15-01.hl7", start)).message_row

    assert (row.state, row.ack_code) == (Hl7State.APPLIED, "AA")
    appointment = Appointment.objects.get(pk=appointment_id)
    assert (appointment.status, appointment.cancellation_fee) == (AppointmentStatus.CANCELLED, 0)
