"""Done-when of issue 9 item 6: every message under ../shared/fixtures/hl7v2/ is applied
or rejected with a recorded reason, and answered with an ACK that hl7apy reads and that
names the message's control id."""

from __future__ import annotations

import pytest
from django.db import transaction

from accounts.models import Role
from mis.models import Hl7Message, Hl7Reason, Hl7Source, Hl7State
from mis.services_hl7 import hl7_ingest
from tests import factories
from tests.mis.hl7_support import (
    fixture_files,
    link_doctor,
    link_patient_of,
    messages_of,
    read_ack,
)

pytestmark = pytest.mark.django_db

FILES = fixture_files()

# What the portal does with the messages it handles when their patient (and, for SIU,
# the doctor) is known to it. Every other file is of a type the portal does not take.
EXPECTED = {
    "LRI_2.0-NG_CBC_Typ_Message.hl7": (Hl7State.APPLIED, Hl7Reason.NONE),
    "LAB-ORU-1.hl7": (Hl7State.APPLIED, Hl7Reason.NONE),
    "LAB-ORU-2.hl7": (Hl7State.APPLIED, Hl7Reason.NONE),
    "ORU-R01-RMGEAD.hl7": (Hl7State.APPLIED, Hl7Reason.NONE),
    # OBX 2 has value type FN (a family name): not a lab value.
    "ORU-R01-GHH-glucose-v2.4.hl7": (Hl7State.REJECTED, Hl7Reason.INVALID_DATA),
    # Reference pointers and encapsulated data (RP, ED) are not lab values either.
    "ORU-R01-01.hl7": (Hl7State.REJECTED, Hl7Reason.INVALID_DATA),
    # The phone number in PID-13 is not one: applied without it.
    "ADT-A04-01.hl7": (Hl7State.APPLIED, Hl7Reason.PARTLY_APPLIED),
    "ADT-A04-02.hl7": (Hl7State.APPLIED, Hl7Reason.PARTLY_APPLIED),
    "ADT-A08-01.hl7": (Hl7State.APPLIED, Hl7Reason.PARTLY_APPLIED),
    "ADT-A08-02.hl7": (Hl7State.APPLIED, Hl7Reason.PARTLY_APPLIED),
    "ADT-A28-01.hl7": (Hl7State.APPLIED, Hl7Reason.PARTLY_APPLIED),
    "ADT-A28-02.hl7": (Hl7State.APPLIED, Hl7Reason.PARTLY_APPLIED),
    "ADT-A31-01.hl7": (Hl7State.APPLIED, Hl7Reason.PARTLY_APPLIED),
    "ADT-A31-02.hl7": (Hl7State.APPLIED, Hl7Reason.PARTLY_APPLIED),
    "ADT04-23.hl7": (Hl7State.APPLIED, Hl7Reason.NONE),
    "ADT04-28.hl7": (Hl7State.APPLIED, Hl7Reason.NONE),
    "ADT04-251.hl7": (Hl7State.APPLIED, Hl7Reason.NONE),
    "ADT-A04-VINAH-v2.5.hl7": (Hl7State.APPLIED, Hl7Reason.NONE),
    # Field-coverage samples dated 2021 (in the past: no free slot), or changes to an
    # appointment the portal never had.
    "SIU-S12-01.hl7": (Hl7State.REJECTED, Hl7Reason.SLOT_UNAVAILABLE),
    "SIU-S12-02.hl7": (Hl7State.REJECTED, Hl7Reason.SLOT_UNAVAILABLE),
    "SIU-S12_1.hl7": (Hl7State.REJECTED, Hl7Reason.SLOT_UNAVAILABLE),
    "SIU-S13-01.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
    "SIU-S14-01.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
    "SIU-S15-01.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
    "SIU-S16-01.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
    "SIU-S17-01.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
    "SIU-S26-01.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
    "SIU-S13-02.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
    "SIU-S14-02.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
    "SIU-S15-02.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
    "SIU-S16-02.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
    "SIU-S17-02.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
    "SIU-S26-02.hl7": (Hl7State.REJECTED, Hl7Reason.UNKNOWN_APPOINTMENT),
}


def test_the_fixtures_are_there():
    # 139 from Microsoft's FHIR-Converter, 2 from python-hl7.
    assert len(FILES) == 141, [p.name for p in FILES]


def _check(path, patient, doctor) -> list[str]:  # noqa: ANN001
    """Ingest one file's messages; what is wrong with their outcome, if anything."""
    problems = []
    for message in messages_of(path):
        link_patient_of(message, patient)
        result = hl7_ingest(raw=message, source=Hl7Source.FILE, filename=str(path))
        row = Hl7Message.objects.get(pk=result.message_row.pk)
        label = f"{path.name}: {row.state} {row.reason_code} ({row.reason})"
        if row.state not in {Hl7State.APPLIED, Hl7State.REJECTED}:
            problems.append(f"{label}: left in {row.state}")
        if row.state == Hl7State.REJECTED and not (row.reason_code and row.reason.strip()):
            problems.append(f"{label}: rejected without a reason")
        if row.state == Hl7State.REJECTED and row.ack_code not in {"AR", "AE"}:
            problems.append(f"{label}: rejected but answered {row.ack_code}")
        if row.state == Hl7State.APPLIED and (row.ack_code != "AA" or not row.produced_ids):
            problems.append(f"{label}: applied but answered {row.ack_code}, produced nothing")
        if row.raw != message:
            problems.append(f"{label}: text not kept as received")
        ack = read_ack(result.ack_text)
        if (ack["code"], ack["control_id"], ack["type"]) != (row.ack_code, row.control_id, "ACK"):
            problems.append(f"{label}: ACK {ack}")
        expected = EXPECTED.get(path.name, (Hl7State.REJECTED, Hl7Reason.UNSUPPORTED))
        if (row.state, row.reason_code) != expected:
            problems.append(f"{label}: expected {expected}")
    return problems


def test_every_fixture_message_is_applied_or_rejected_with_a_reason():
    """Each file on its own (a savepoint rolled back after it: the samples reuse control
    ids and patients across files), with its patients and doctors known to the portal."""
    patient = factories.make_patient().patient_profile
    doctor = factories.make_staff(Role.DOCTOR)
    factories.make_consultation_type(doctor)
    factories.make_working_week(doctor)
    for aip_id in ("1210", "400", "500", "600"):
        link_doctor("hl7:GHHSFacility", aip_id, doctor)
    problems = []
    outcomes = {}
    for path in FILES:
        savepoint = transaction.savepoint()
        try:
            problems += _check(path, patient, doctor)
            outcomes[path.name] = list(Hl7Message.objects.values_list("state", flat=True))
            assert not Hl7Message.objects.filter(state=Hl7State.RECEIVED).exists()
        finally:
            transaction.savepoint_rollback(savepoint)
    assert problems == []
    assert len(outcomes) == len(FILES)
