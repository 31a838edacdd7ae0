"""ADT^A04/A08 -> the matched patient's details through accounts' services; never a
second patient, never a match on name."""

from __future__ import annotations

import json
from datetime import date

import pytest

from accounts.models import PatientProfile, Sex
from audit.models import AuditAction, AuditEvent
from mis.hl7.handlers.identity import patient_ids
from mis.hl7.parse import normalise, parse
from mis.models import (
    ExternalLink,
    Hl7Reason,
    Hl7Source,
    Hl7State,
    LinkedKind,
    MatchReason,
    MatchState,
    PatientMatchReview,
)
from mis.services_hl7 import hl7_ingest, hl7_reprocess
from tests import factories
from tests.mis.hl7_support import fixture_text, link_patient_of, read_ack

pytestmark = pytest.mark.django_db

SNILS = "112-233-445 95"


def _adt(trigger: str, pid: str, control_id: str = "RU-1") -> str:
    return normalise(
        f"MSH|^~\\&|MIS|POLYCLINIC-1|PORTAL|CLINIC|20261120101500+0300||ADT^{trigger}^ADT_A01|"
        f"{control_id}|P|2.5|||AL|NE||UNICODE UTF-8\r"
        f"EVN|{trigger}|20261120101500+0300\r"
        f"{pid}\r"
        "PV1|1|O\r"
    )


def _ingest(text: str):
    return hl7_ingest(raw=text, source=Hl7Source.MLLP)


def test_a08_fixture_updates_the_linked_patients_details():
    user = factories.make_patient(first_name="Анна", last_name="Иванова")
    profile = user.patient_profile
    text = fixture_text("ADT-A08-01.hl7")
    link_patient_of(text, profile)

    result = _ingest(text)

    row = result.message_row
    assert (row.state, row.produced_kind, row.produced_id) == (
        Hl7State.APPLIED,
        "patient",
        profile.pk,
    )
    # PID-13's "number" is 4 digits: left out, and said so.
    assert row.reason_code == Hl7Reason.PARTLY_APPLIED and "PID-13" in row.reason
    profile.refresh_from_db()
    # PID-5's second repetition is the one typed "L" (legal; the first is "D", a display
    # name): its family name and second name are taken; its given name is empty, so the
    # first name stays as it was.
    assert (profile.last_name, profile.first_name, profile.middle_name) == (
        "Josh",
        "Анна",
        "stanley",
    )
    assert (profile.birth_date, profile.sex) == (date(1988, 8, 18), Sex.MALE)
    assert profile.address == "1000 Hospital Lane, Ste. 123, Ann Arbor, MI, 99999, USA"
    assert profile.phone == "+7 912 345-67-89"  # unchanged
    assert PatientProfile.objects.count() == 1
    change = AuditEvent.objects.filter(
        action=AuditAction.CHANGE, object_type="accounts.patientprofile", patient=user
    ).latest("seq")
    assert "last_name" in change.detail["fields"]
    assert read_ack(result.ack_text)["code"] == "AA"


def test_a08_matches_by_snils_links_the_mis_id_and_updates():
    user = factories.make_patient(first_name="Пётр", last_name="Сидоров", snils=SNILS)
    pid = (
        "PID|1||77001^^^POLYCLINIC-1^MR~11223344595^^^SNILS^SNILS||Сидоров^Пётр^Ильич^^^^L"
        "||19700102|M|||ул. Ленина, 5^кв. 7^Казань^^420000^RU||^PRN^PH^^7^843^2123456"
    )

    row = _ingest(_adt("A08", pid)).message_row

    assert row.state == Hl7State.APPLIED, row.reason
    assert row.reason_code == ""
    profile = PatientProfile.objects.get(pk=user.patient_profile.pk)
    assert (profile.middle_name, profile.birth_date) == ("Ильич", date(1970, 1, 2))
    assert profile.phone == "+7 843 2123456"
    assert profile.address == "ул. Ленина, 5, кв. 7, Казань, 420000, RU"
    link = ExternalLink.objects.get(kind=LinkedKind.PATIENT, system="hl7:POLYCLINIC-1")
    assert (link.value, link.object_id) == ("77001", profile.pk)


def test_a04_for_a_matched_patient_updates_and_never_creates_a_second():
    user = factories.make_patient(snils=SNILS)
    pid = "PID|1||11223344595^^^1.2.643.100.3^SNILS||Новикова^Анна||19800505|F"

    row = _ingest(_adt("A04", pid)).message_row

    assert row.state == Hl7State.APPLIED, row.reason
    assert PatientProfile.objects.count() == 1
    assert PatientProfile.objects.get().last_name == "Новикова"
    assert row.produced_id == user.patient_profile.pk


def test_a_patient_is_never_matched_on_name_and_birth_date():
    factories.make_patient(first_name="Анна", last_name="Новикова", birth_date=date(1980, 5, 5))
    pid = "PID|1||555^^^POLYCLINIC-1^MR||Новикова^Анна||19800505|F"

    a08 = _ingest(_adt("A08", pid, "RU-2")).message_row
    a04 = _ingest(_adt("A04", pid, "RU-3")).message_row

    assert (a08.state, a08.reason_code, a08.ack_code) == (
        Hl7State.REJECTED,
        Hl7Reason.UNKNOWN_PATIENT,
        "AR",
    )
    assert (a04.state, a04.reason_code) == (Hl7State.REJECTED, Hl7Reason.PATIENT_REVIEW)
    assert PatientProfile.objects.count() == 1
    assert not ExternalLink.objects.filter(kind=LinkedKind.PATIENT).exists()
    # The MIS patient waits for a person's decision, in the FHIR pull's review queue.
    review = PatientMatchReview.objects.get(system="hl7:POLYCLINIC-1", resource_id="555")
    assert (review.state, review.reason) == (MatchState.PENDING, MatchReason.NO_IDENTIFIERS)
    assert json.loads(review.raw)["name"] == [{"family": "Новикова", "given": ["Анна"]}]
    assert "Новикова" in review.summary


def test_an_a04_waiting_for_review_is_applied_after_linking(admin_user):
    pid = "PID|1||556^^^POLYCLINIC-1^MR||Орлова^Вера||19900101|F"
    row = _ingest(_adt("A04", pid, "RU-4")).message_row
    assert row.reason_code == Hl7Reason.PATIENT_REVIEW
    review = PatientMatchReview.objects.get(resource_id="556")
    patient = factories.make_patient().patient_profile
    from mis.services_sync import patient_match_link

    patient_match_link(by=admin_user, review=review, patient=patient)
    row = hl7_reprocess(by=admin_user, message=row)

    assert row.state == Hl7State.APPLIED, row.reason
    patient.refresh_from_db()
    assert (patient.last_name, patient.first_name) == ("Орлова", "Вера")


def test_identifiers_naming_two_patients_are_refused():
    first = factories.make_patient(snils=SNILS).patient_profile
    second = factories.make_patient().patient_profile
    ExternalLink.objects.create(
        kind=LinkedKind.PATIENT, system="hl7:POLYCLINIC-1", value="900", object_id=second.pk
    )
    pid = "PID|1||900^^^POLYCLINIC-1^MR~11223344595^^^SNILS^SNILS||Чужая^Фамилия"

    row = _ingest(_adt("A08", pid)).message_row

    assert (row.state, row.reason_code) == (Hl7State.REJECTED, Hl7Reason.UNKNOWN_PATIENT)
    assert "two different" in row.reason
    first.refresh_from_db()
    second.refresh_from_db()
    assert "Чужая" not in (first.last_name, second.last_name)


def test_snils_in_pid3_by_type_authority_or_valid_ss():
    def ids(cx: str):  # noqa: ANN202
        text = _adt("A08", f"PID|1||{cx}||X^Y")
        return patient_ids(parse(text, check=False).first("PID"))

    assert ids("11223344595^^^^SNILS").snils == "11223344595"
    assert ids("112-233-445 95^^^1.2.643.100.3").snils == "11223344595"
    assert ids("11223344595^^^USSSA^SS").snils == "11223344595"
    us = ids("123456789^^^USSSA^SS~PATID1234^^^GH^MR")
    assert (us.snils, us.mis_id) == ("", "PATID1234")  # a US SSN is no SNILS nor MIS id
    assert ids("11223344596^^^^SNILS").snils == ""  # wrong check digits


def test_a_message_in_windows_1251_named_by_msh_18():
    user = factories.make_patient(snils=SNILS)
    text = (
        "MSH|^~\\&|MIS|POLYCLINIC-1|PORTAL|CLINIC|20261120101500+0300||ADT^A08^ADT_A01|"
        "CP-1|P|2.5|||AL|NE||CP1251\r"
        "PID|1||11223344595^^^^SNILS||Ёлкина^Дарья^Сергеевна\r"
    )

    row = hl7_ingest(raw=text.encode("cp1251"), source=Hl7Source.FILE).message_row

    assert row.state == Hl7State.APPLIED, row.reason
    profile = PatientProfile.objects.get(pk=user.patient_profile.pk)
    assert (profile.last_name, profile.middle_name) == ("Ёлкина", "Сергеевна")


def test_unsupported_adt_events_are_rejected_with_a_reason():
    user = factories.make_patient(snils=SNILS)
    pid = "PID|1||11223344595^^^^SNILS||Новикова^Анна"

    row = _ingest(_adt("A40", pid)).message_row

    assert (row.state, row.reason_code, row.ack_code) == (
        Hl7State.REJECTED,
        Hl7Reason.UNSUPPORTED,
        "AR",
    )
    assert "merges" in row.reason
    assert user.patient_profile.last_name != "Новикова"


def test_parse_errors_are_recorded_and_answered():
    for raw, reason in (
        (b"HELLO WORLD\r", "MSH"),
        (b"MSH|^~\\&|A|B|C|D|20260101||ADT^A08|X1|P|2.9\rPID|1\r", "UnsupportedVersion"),
        (b"MSH|^~\\&|A|B|C|D|20260101||ADT^A08|X3|P|2.5\rPID|1||\xff\xfe\r", "UTF-8"),
    ):
        result = hl7_ingest(raw=raw, source=Hl7Source.FILE, filename="bad.hl7")
        row = result.message_row
        assert row.state == Hl7State.REJECTED
        assert (row.reason_code, row.ack_code) == (Hl7Reason.PARSE_ERROR, "AR"), row.reason
        assert reason in row.reason
        assert read_ack(result.ack_text)["code"] == "AR"


def test_no_personal_data_reaches_the_logs_or_the_reason(caplog, monkeypatch):
    import logging

    from mis.hl7 import handlers as hl7_handlers

    caplog.set_level(logging.DEBUG)
    factories.make_patient(snils=SNILS)
    pid = "PID|1||11223344595^^^^SNILS||Канареечкина^Зоряна||19800505|F|||ул. Канареечная, 99"
    applied = _ingest(_adt("A08", pid, "LOG-1")).message_row

    def broken(parsed):  # noqa: ANN001, ANN202
        raise RuntimeError("Канареечкина Зоряна 11223344595")

    monkeypatch.setattr(hl7_handlers, "handle", broken)
    failed = _ingest(_adt("A08", pid, "LOG-2")).message_row

    assert applied.state == Hl7State.APPLIED and failed.ack_code == "AE"
    assert "RuntimeError" in caplog.text  # the failure is logged…
    for canary in ("Канареечкина", "Зоряна", "11223344595", "Канареечная"):
        assert canary not in caplog.text  # …without the message's content
        assert canary not in failed.reason + failed.ack_text + applied.reason + applied.ack_text
