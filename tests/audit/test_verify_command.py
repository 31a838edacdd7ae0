"""verify_audit_chain: OK on an intact chain; names the first altered, removed or
inserted row otherwise. Tampering goes around the trigger the way an operator could."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.db import connection

from audit.chain import link_hash, row_of
from audit.models import AuditEvent
from tests.audit.conftest import trigger_off

pytestmark = pytest.mark.django_db


def verify(*args: str) -> str:
    out = io.StringIO()
    call_command("verify_audit_chain", *args, stdout=out)
    return out.getvalue()


def broken(*args: str) -> str:
    with pytest.raises(CommandError) as info:
        verify(*args)
    return str(info.value)


def test_intact_chain_is_ok(events):
    total = AuditEvent.objects.count()
    output = verify("--batch-size", "3")
    assert output.startswith(f"OK: {total} events, chain intact\n")
    head = AuditEvent.objects.order_by("-seq").first()
    assert f"head: seq {head.seq} hash {head.hash}" in output


def test_exit_status_is_zero_when_intact_and_one_when_broken(events, capsys, monkeypatch):
    from django.db import connections

    # manage.py closes every connection when a command ends; keep the test's transaction.
    monkeypatch.setattr(connections, "close_all", lambda: None)
    execute_from_command_line(["manage.py", "verify_audit_chain"])  # returns: exit status 0
    assert "chain intact" in capsys.readouterr().out
    middle = events[5]
    with trigger_off():
        AuditEvent.objects.filter(pk=middle.pk).update(reason="nothing happened")
    with pytest.raises(SystemExit) as failed:
        execute_from_command_line(["manage.py", "verify_audit_chain"])
    assert failed.value.code == 1
    assert f"id={middle.pk} seq={middle.seq}" in capsys.readouterr().err


def test_an_empty_trail_is_ok(db):
    AuditEvent.objects.all().exists()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_auditevent CASCADE")  # the trigger does not cover it
    assert verify() == "OK: 0 events, chain intact\n"


def test_field_altered_through_the_orm_is_found(events):
    middle = events[4]
    with trigger_off():
        AuditEvent.objects.filter(pk=middle.pk).update(object_id="999")
    message = broken()
    assert f"row id={middle.pk} seq={middle.seq}: altered" in message


def test_field_altered_with_raw_sql_is_found(events):
    middle = events[6]
    with trigger_off(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET detail = '{\"x\": 1}'::jsonb WHERE id = %s", [middle.pk]
        )
    assert f"row id={middle.pk} seq={middle.seq}: altered" in broken()


def test_trigger_disabled_by_a_superuser_is_still_caught_by_the_chain(events):
    middle = events[3]
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE wants no pending checks
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE audit_auditevent SET actor_role = 'admin' WHERE id = %s", [middle.pk]
        )
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
    assert f"row id={middle.pk} seq={middle.seq}: altered" in broken()


def test_altered_row_with_its_hash_recomputed_breaks_the_next_link(events):
    middle, following = events[4], events[5]
    middle.reason = "rewritten"
    new_hash = link_hash(middle.prev_hash, row_of(middle))
    with trigger_off():
        AuditEvent.objects.filter(pk=middle.pk).update(reason="rewritten", hash=new_hash)
    message = broken()
    assert f"row id={following.pk} seq={following.seq}: out of order or inserted" in message


def test_deleted_middle_row_is_a_gap(events):
    middle = events[5]
    following = events[6]
    with trigger_off(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [middle.pk])
    message = broken()
    assert (
        f"row id={following.pk} seq={following.seq}: removed: gap in seq after {middle.seq - 1}"
        in message
    )


def test_deleted_first_row_is_found(events):
    with trigger_off():
        AuditEvent.objects.filter(seq=1).delete()
    assert "removed: the chain starts at seq 2, not 1" in broken()


def test_row_appended_with_a_forged_prev_hash_is_found(events):
    head = events[-1]
    forged = AuditEvent(
        seq=head.seq + 1,
        occurred_at=head.occurred_at,
        action="view",
        object_type="records.labresult",
        object_id="1",
        prev_hash="a" * 64,
    )
    forged.hash = link_hash(forged.prev_hash, row_of(forged))
    forged.save(force_insert=True)  # inserting needs no trigger bypass
    message = broken()
    assert f"row id={forged.pk} seq={forged.seq}: out of order or inserted" in message


def test_row_inserted_in_the_middle_is_found(events):
    """Room is made by moving the later rows up one seq; the new row claims the gap."""
    at = events[5]
    with trigger_off(), connection.cursor() as cursor:
        # In two steps, so seq stays unique at every row.
        cursor.execute("UPDATE audit_auditevent SET seq = seq + 1000000 WHERE seq >= %s", [at.seq])
        cursor.execute("UPDATE audit_auditevent SET seq = seq - 999999 WHERE seq >= 1000000")
    inserted = AuditEvent(
        seq=at.seq,
        occurred_at=at.occurred_at,
        action="view",
        object_type="records.labresult",
        object_id="7",
        prev_hash=events[4].hash,  # links correctly to the row before…
    )
    inserted.hash = link_hash(inserted.prev_hash, row_of(inserted))
    inserted.save(force_insert=True)
    message = broken()  # …but the row after no longer links to it
    assert f"row id={at.pk} seq={at.seq + 1}: out of order or inserted" in message


def test_rows_swapped_are_out_of_order(events):
    a, b = events[2], events[3]
    with trigger_off(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET seq = 1000000 WHERE id = %s", [a.pk])
        cursor.execute("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [a.seq, b.pk])
        cursor.execute("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [b.seq, a.pk])
    message = broken()
    assert f"row id={b.pk} seq={a.seq}: out of order or inserted" in message


def test_anchors_catch_a_cut_off_tail_and_a_rewritten_history(events):
    head = events[-1]
    assert verify("--anchor", f"{head.seq}:{head.hash}").startswith("OK:")
    with trigger_off():
        AuditEvent.objects.filter(seq=head.seq).delete()
    assert f"anchored seq {head.seq} is past the end" in broken(
        "--anchor", f"{head.seq}:{head.hash}"
    )
    assert "rewritten" in broken("--anchor", f"{events[2].seq}:{'0' * 64}")
    with pytest.raises(CommandError, match="SEQ:SHA256HEX"):
        verify("--anchor", "nonsense")
