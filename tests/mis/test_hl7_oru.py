"""ORU^R01 -> lab results: values, units, ranges and flags as the laboratory sent them,
released per records' rules, idempotent by control id, all or nothing per message."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from mis.hl7 import handlers as hl7_handlers
from mis.hl7.handlers.oru import FLAGS, loinc_check_digit_ok, reference_range
from mis.models import AckCode, Hl7Message, Hl7Reason, Hl7Source, Hl7State
from mis.services_hl7 import hl7_ingest, hl7_reprocess
from records.models import LabReport, Observation, ReleasePolicy, ReviewState, TestType
from records.services import lab_report_review
from tests import factories
from tests.mis.hl7_support import fixture_text, link_patient_of, read_ack

pytestmark = pytest.mark.django_db

LRI = "LRI_2.0-NG_CBC_Typ_Message.hl7"


def _cbc_type(policy: str = ReleasePolicy.IMMEDIATE) -> TestType:
    return TestType.objects.create(
        code="cbc-diff",
        name_ru="Общий анализ крови с лейкоформулой",
        name_en="CBC with differential",
        loinc_code="57021-8",
        release_policy=policy,
    )


@pytest.fixture
def patient_user():
    return factories.make_patient(language="en")


@pytest.fixture
def lri(patient_user):
    text = fixture_text(LRI)
    link_patient_of(text, patient_user.patient_profile)
    return text


def _ingest(text: str, **kwargs):
    return hl7_ingest(raw=text, source=kwargs.pop("source", Hl7Source.MLLP), **kwargs)


# --- Units of the mapping ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("4.3 to 6.2", "4.3", "6.2"),
        ("13-18", "13", "18"),
        ("70_105", "70", "105"),
        ("-1.5 - 2", "-1.5", "2"),
        ("0,5-1,2", "0.5", "1.2"),
        ("<5", None, "5"),
        (">=10", "10", None),
        ("negative", None, None),
        ("18-13", None, None),  # ends below its start: kept as text only
        ("0.000001-1", None, None),  # more decimals than records keeps
    ],
)
def test_reference_ranges_are_read_into_low_and_high(text, low, high):
    got = reference_range(text)
    assert got == (
        Decimal(low) if low is not None else None,
        Decimal(high) if high is not None else None,
    )


def test_loinc_check_digits():
    assert all(loinc_check_digit_ok(c) for c in ("718-7", "1554-5", "26464-8", "57021-8"))
    assert not any(loinc_check_digit_ok(c) for c in ("718-6", "1554-4", "12345-0"))


def test_abnormal_flags_map_to_records_interpretations():
    assert {FLAGS[f] for f in ("N", "H", "L", "HH", "LL", "A")} == {"N", "H", "L", "HH", "LL", "A"}
    assert FLAGS["AA"] == "A" and FLAGS[">"] == "HH" and FLAGS["<"] == "LL"


# --- The NIST CBC message ---------------------------------------------------------------------


def test_cbc_results_arrive_with_values_units_ranges_and_flags(lri, patient_user):
    _cbc_type()
    result = _ingest(lri)

    row = result.message_row
    assert (row.state, row.ack_code, row.produced_kind) == (Hl7State.APPLIED, "AA", "lab_report")
    assert read_ack(result.ack_text)["control_id"] == "NIST-LRI-NG-002.00"
    report = LabReport.objects.get(pk=row.produced_id)
    assert report.patient == patient_user.patient_profile
    assert (report.source, report.external_id) == (
        "hl7:NIST Lab Facility",
        "R-991133^NIST Lab Filler",
    )
    assert report.status == "final"
    assert report.test_type.code == "cbc-diff"
    assert report.collected_at == datetime(2011, 1, 3, 22, 34, 28, tzinfo=UTC)  # -0800
    observations = {o.loinc_code: o for o in report.observations.all()}
    assert len(observations) == 28
    hb = observations["718-7"]
    assert (hb.value_quantity, hb.unit, hb.interpretation) == (Decimal("12.5"), "g/mL", "L")
    assert (hb.reference_low, hb.reference_high, hb.reference_text) == (
        Decimal("13"),
        Decimal("18"),
        "13 to 18",
    )
    wbc = observations["26464-8"]
    assert (wbc.value_quantity, wbc.interpretation, wbc.unit) == (
        Decimal("105600"),
        "HH",
        "{cells}/uL",
    )
    aniso = observations["38892-6"]  # CWE: a coded value
    assert (aniso.value_type, aniso.value_code, aniso.value_display) == (
        "coded",
        "260348001",
        "Present ++ out of ++++",
    )
    assert observations["6742-1"].value_text == "Many spherocytes present."  # TX
    assert report.performer == "Century Hospital"


def test_released_at_once_and_shown_to_the_patient_when_the_test_is_immediate(
    lri, patient_user, client
):
    _cbc_type(ReleasePolicy.IMMEDIATE)
    report = LabReport.objects.get(pk=_ingest(lri).message_row.produced_id)
    assert report.released

    client.force_login(patient_user)
    page = client.get(reverse("records:result_detail", args=[report.public_id]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Hemoglobin [Mass/volume] in Blood" in html
    assert "13 to 18" in html or "13–18" in html or "13 – 18" in html
    assert "Critically high" in html and "Low" in html
    listing = client.get(reverse("records:results")).content.decode()
    assert str(report.public_id) in listing


def test_unknown_test_type_is_created_for_review_and_hidden_until_a_doctor_releases(
    lri, patient_user, client
):
    report = LabReport.objects.get(pk=_ingest(lri).message_row.produced_id)
    test_type = report.test_type
    assert (test_type.code, test_type.loinc_code, test_type.release_policy) == (
        "hl7-loinc-57021-8",
        "57021-8",
        ReleasePolicy.AFTER_REVIEW,
    )
    assert test_type.name_en == "CBC W Auto Differential panel in Blood"
    assert (report.released, report.review_state) == (False, ReviewState.PENDING)
    client.force_login(patient_user)
    page = client.get(reverse("records:result_detail", args=[report.public_id]))
    assert page.status_code == 404

    doctor = factories.make_staff(Role.DOCTOR)
    from accounts.services import care_access_grant

    care_access_grant(by=None, doctor=doctor, patient=report.patient, reason="test")
    lab_report_review(by=doctor, report=report, comment="Please come in.", release=True)
    assert client.get(reverse("records:result_detail", args=[report.public_id])).status_code == 200


def test_the_same_message_again_changes_nothing_and_gets_the_same_ack(lri):
    _cbc_type()
    first = _ingest(lri)
    report = LabReport.objects.get(pk=first.message_row.produced_id)
    before = list(Observation.objects.filter(report=report).values_list("id", "value_quantity"))
    updated_at = report.updated_at
    events = AuditEvent.objects.count()

    again = _ingest(lri, source=Hl7Source.FILE, filename="resend.hl7")

    assert again.ack_text == first.ack_text
    assert again.message_row.state == Hl7State.DUPLICATE
    assert again.message_row.duplicate_of_id == first.message_row.pk
    assert again.message_row.raw == ""  # no second copy of the text
    assert LabReport.objects.count() == 1
    report.refresh_from_db()
    assert report.updated_at == updated_at
    after = list(Observation.objects.filter(report=report).values_list("id", "value_quantity"))
    assert after == before
    # Only the repeat itself is recorded.
    assert AuditEvent.objects.count() == events + 1
    # A resend stamped with a new MSH-7 is still the same message.
    restamped = lri.replace("20110531140551-0500", "20110531150000-0500", 1)
    assert _ingest(restamped).message_row.state == Hl7State.DUPLICATE


def test_a_different_message_reusing_the_control_id_is_rejected_and_changes_nothing(lri):
    _cbc_type()
    first = _ingest(lri)
    altered = lri.replace("||12.5|g/mL", "||99.5|g/mL", 1)

    result = _ingest(altered)

    row = result.message_row
    assert (row.state, row.reason_code, row.ack_code) == (
        Hl7State.REJECTED,
        Hl7Reason.CONTROL_ID_REUSED,
        "AR",
    )
    assert row.duplicate_of_id == first.message_row.pk
    assert read_ack(result.ack_text)["code"] == "AR"
    assert Observation.objects.get(loinc_code="718-7").value_quantity == Decimal("12.5")


def test_preliminary_then_final_updates_the_same_reports():
    patient = factories.make_patient()
    first, second = fixture_text("LAB-ORU-1.hl7"), fixture_text("LAB-ORU-2.hl7")
    link_patient_of(first, patient.patient_profile)

    one = _ingest(first).message_row
    assert one.state == Hl7State.APPLIED, one.reason
    assert len(one.produced_ids) == 2
    pending = Observation.objects.filter(report_id__in=one.produced_ids, loinc_code="20509-6")
    assert not pending.exists()  # OBX-11 "I": no value yet

    two = _ingest(second).message_row
    assert two.state == Hl7State.APPLIED, two.reason
    assert sorted(two.produced_ids) == sorted(one.produced_ids)
    assert LabReport.objects.count() == 2
    hemoglobin = Observation.objects.get(loinc_code="20509-6")
    assert (hemoglobin.value_quantity, hemoglobin.status) == (Decimal("13.4"), "final")


def test_structured_numeric_and_a_local_panel_code():
    """The HL7 standard's glucose example: SN value "^182", range "70_105", flag H, a
    panel code that is not LOINC (a test type is made for it)."""
    patient = factories.make_patient()
    text = fixture_text("ORU-R01-RMGEAD.hl7")
    link_patient_of(text, patient.patient_profile)

    row = _ingest(text).message_row

    assert row.state == Hl7State.APPLIED, row.reason
    glucose = Observation.objects.get(report_id=row.produced_id)
    assert (glucose.loinc_code, glucose.value_quantity, glucose.unit) == (
        "1554-5",
        Decimal("182"),
        "mg/dl",
    )
    assert (glucose.reference_low, glucose.reference_high, glucose.interpretation) == (
        Decimal("70"),
        Decimal("105"),
        "H",
    )
    assert glucose.report.test_type.code == "hl7-local-15545"


def test_an_unknown_patient_is_rejected_and_nothing_is_filed():
    result = _ingest(fixture_text(LRI))

    row = result.message_row
    assert (row.state, row.reason_code, row.ack_code) == (
        Hl7State.REJECTED,
        Hl7Reason.UNKNOWN_PATIENT,
        "AR",
    )
    assert "PID-3" in row.reason
    assert not LabReport.objects.exists()
    ack = read_ack(result.ack_text)
    assert ack["code"] == "AR" and ack["control_id"] == "NIST-LRI-NG-002.00"
    assert "ERR|" in result.ack_text  # 2.5.1: an ERR segment with the HL7 error code
    assert "^HL70357" in result.ack_text


def test_one_bad_observation_rejects_the_whole_message(lri):
    """All or nothing: the first OBR's report is not kept when the second cannot be."""
    _cbc_type()
    text = lri + "OBR|2||R-991134^NIST Lab Filler|1554-5^Glucose^LN|||20110103143428-0800\r"
    text += "OBX|1|NM|99999^Local thing^99LOCAL||5|mmol/L|||||F\r"

    row = _ingest(text).message_row

    assert (row.state, row.reason_code) == (Hl7State.REJECTED, Hl7Reason.INVALID_DATA)
    assert "OBR 2, OBX 1" in row.reason and "LOINC" in row.reason
    assert not LabReport.objects.exists()


def test_an_error_on_our_side_answers_ae_and_the_resend_is_processed(lri, monkeypatch):
    _cbc_type()
    real = hl7_handlers.handle

    def broken(parsed):  # noqa: ANN001, ANN202
        raise RuntimeError("database went away")

    monkeypatch.setattr(hl7_handlers, "handle", broken)
    failed = _ingest(lri)
    assert (failed.message_row.state, failed.message_row.ack_code) == (Hl7State.REJECTED, "AE")
    assert "RuntimeError" in failed.message_row.reason
    assert "database went away" not in failed.message_row.reason  # never the exception text
    assert not LabReport.objects.exists()

    monkeypatch.setattr(hl7_handlers, "handle", real)
    retried = _ingest(lri)

    assert retried.message_row.pk == failed.message_row.pk
    assert (retried.message_row.state, retried.message_row.attempts) == (Hl7State.APPLIED, 2)
    assert read_ack(retried.ack_text)["code"] == "AA"
    assert LabReport.objects.count() == 1


def test_reprocess_after_the_patient_is_linked(admin_user):
    text = fixture_text(LRI)
    row = _ingest(text).message_row
    assert row.reason_code == Hl7Reason.UNKNOWN_PATIENT
    patient = factories.make_patient()
    link_patient_of(text, patient.patient_profile)
    reception = factories.make_staff(Role.RECEPTION)
    with pytest.raises(PermissionDenied):
        hl7_reprocess(by=reception, message=row)

    row = hl7_reprocess(by=admin_user, message=row)

    assert (row.state, row.ack_code, row.attempts) == (Hl7State.APPLIED, AckCode.ACCEPT, 2)
    assert LabReport.objects.get().patient == patient.patient_profile
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.CHANGE, object_type="mis.hl7message"
    ).exists()
    # The sender's resend now gets the new reply.
    again = _ingest(text)
    assert again.message_row.state == Hl7State.DUPLICATE
    assert read_ack(again.ack_text)["code"] == "AA"


def test_the_message_text_is_encrypted_at_rest(lri):
    from django.db import connection

    row = _ingest(lri).message_row
    with connection.cursor() as cursor:
        cursor.execute("SELECT raw FROM mis_hl7message WHERE id = %s", [row.pk])
        stored = cursor.fetchone()[0]
    assert "Jones" not in stored and "PATID1234" not in stored
    assert Hl7Message.objects.get(pk=row.pk).raw == lri
