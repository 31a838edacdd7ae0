"""`manage.py hl7_ingest` (files, batches, directories) and the admin of HL7 messages."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from django.core.management import call_command

from audit.models import AuditAction, AuditEvent
from mis.models import Hl7Message, Hl7Reason, Hl7Source, Hl7State
from mis.services_hl7 import hl7_ingest
from records.models import LabReport
from tests import factories
from tests.mis.hl7_support import (
    FIXTURES,
    fixture_files,
    fixture_text,
    link_patient_of,
    messages_of,
)

pytestmark = pytest.mark.django_db

ADT_A01 = "MSH|^~\\&|LAB|FAC|PORTAL|CLINIC|20261120101500+0300||ADT^A01^ADT_A01|{cid}|P|2.5\n"
ADT_A01 += "PID|1||1^^^FAC^MR||Doe^John\n"


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("hl7_ingest", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_a_batch_file_with_bom_and_newlines_and_a_bad_file(tmp_path):
    batch = "FHS|^~\\&|LAB\nBHS|^~\\&|LAB\n" + ADT_A01.format(cid="B-1")
    batch += ADT_A01.format(cid="B-2") + "BTS|2\nFTS|1\n"
    (tmp_path / "batch.hl7").write_bytes(b"\xef\xbb\xbf" + batch.encode())
    (tmp_path / "junk.hl7").write_bytes(b"\x00\x01 not hl7 \xff")
    (tmp_path / "notes.txt").write_text("not taken: wrong pattern")

    out = _run(str(tmp_path))

    assert "batch.hl7 #1: rejected AR ADT^A01 B-1" in out
    assert "batch.hl7 #2: rejected AR ADT^A01 B-2" in out
    assert "junk.hl7: rejected AR ?" in out and "parse_error" in out
    assert "2 file(s), 3 message(s): 3 rejected" in out
    rows = Hl7Message.objects.order_by("id")
    assert [r.source for r in rows] == [Hl7Source.FILE] * 3
    assert rows[0].filename.endswith("batch.hl7")
    assert not rows[0].raw.startswith("\ufeff") and "\n" not in rows[0].raw

    again = _run(str(tmp_path))  # idempotent: nothing new, the same replies
    # Without a readable MSH-10 there is no key to recognise the junk by: recorded again.
    assert "2 file(s), 3 message(s): 1 rejected, 2 duplicate" in again
    assert Hl7Message.objects.filter(duplicate_of__isnull=True).count() == 4


def test_fail_on_reject_exits_with_status_1(tmp_path):
    (tmp_path / "one.hl7").write_text(ADT_A01.format(cid="F-1"))
    with pytest.raises(SystemExit) as exit_info:
        _run(str(tmp_path / "one.hl7"), "--fail-on-reject")
    assert exit_info.value.code == 1


def test_the_whole_fixture_directory_in_one_run():
    """As an operator would load the samples: every message recorded, none left
    "received", every rejection with its reason; the samples reuse control ids across
    files, which is answered as a reused control id (or a repeat when identical)."""
    patient = factories.make_patient().patient_profile
    link_patient_of(fixture_text("LRI_2.0-NG_CBC_Typ_Message.hl7"), patient)
    expected = sum(len(messages_of(p)) for p in fixture_files())

    out = _run(str(FIXTURES))

    rows = list(Hl7Message.objects.all())
    assert len(rows) == expected
    states = Counter(r.state for r in rows)
    assert states[Hl7State.RECEIVED] == 0
    assert all(r.reason_code and r.reason for r in rows if r.state == Hl7State.REJECTED)
    assert all(r.duplicate_of_id for r in rows if r.state == Hl7State.DUPLICATE)
    assert states[Hl7State.APPLIED] >= 1 and LabReport.objects.count() == 1
    assert f"141 file(s), {expected} message(s)" in out
    reused = [r for r in rows if r.reason_code == Hl7Reason.CONTROL_ID_REUSED]
    assert reused and all(r.duplicate_of_id for r in reused)


# --- Admin --------------------------------------------------------------------------------


def test_admin_lists_without_text_and_shows_it_on_the_audited_page(client, login_staff, admin_user):
    patient = factories.make_patient()
    text = fixture_text("LRI_2.0-NG_CBC_Typ_Message.hl7")
    link_patient_of(text, patient.patient_profile)
    row = hl7_ingest(raw=text, source=Hl7Source.MLLP).message_row
    login_staff(admin_user)

    listing = client.get("/admin/mis/hl7message/?state__exact=applied")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "NIST-LRI-NG-002.00" in html and "Jones" not in html
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.VIEW, object_type="mis.hl7message"
    ).exists()

    page = client.get(f"/admin/mis/hl7message/{row.pk}/change/")
    assert page.status_code == 200
    assert "Jones^William^A" in page.content.decode()
    assert AuditEvent.objects.filter(
        actor=admin_user,
        action=AuditAction.VIEW,
        object_type="mis.hl7message",
        object_id=str(row.pk),
        patient=patient,
    ).exists()
    # View only: a POST changes nothing.
    client.post(f"/admin/mis/hl7message/{row.pk}/change/", {"state": "rejected"})
    row.refresh_from_db()
    assert row.state == Hl7State.APPLIED


def test_admin_action_processes_a_rejected_message_again(client, login_staff, admin_user):
    text = fixture_text("LRI_2.0-NG_CBC_Typ_Message.hl7")
    row = hl7_ingest(raw=text, source=Hl7Source.MLLP).message_row
    assert row.reason_code == Hl7Reason.UNKNOWN_PATIENT
    link_patient_of(text, factories.make_patient().patient_profile)
    login_staff(admin_user)

    response = client.post(
        "/admin/mis/hl7message/",
        {"action": "reprocess", "_selected_action": [str(row.pk)]},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 200
    row.refresh_from_db()
    assert (row.state, row.attempts) == (Hl7State.APPLIED, 2)
    assert LabReport.objects.count() == 1
