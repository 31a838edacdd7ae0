"""audit_record: contiguous seq, linked hashes, canonical form, transactions."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction

from audit.chain import GENESIS_HASH, canonical, link_hash, row_of
from audit.context import RequestContext, _current
from audit.models import AuditAction, AuditEvent
from audit.services import audit_record
from tests.audit.conftest import frozen_audit_clock, write_events


@pytest.mark.django_db
def test_rows_form_a_chain_from_genesis():
    AuditEvent.objects.all().exists()  # whatever fixtures wrote is the start of the chain
    write_events(5)
    rows = list(AuditEvent.objects.order_by("seq"))
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0].prev_hash == GENESIS_HASH
    for before, row in zip(rows, rows[1:], strict=False):
        assert row.prev_hash == before.hash
    for row in rows:
        assert row.hash == link_hash(row.prev_hash, row_of(row))


@pytest.mark.django_db
def test_hash_is_sha256_of_prev_hash_and_the_canonical_row(doctor, patient):
    when = dt.datetime(2026, 3, 29, 0, 30, 5, 123456, tzinfo=dt.UTC)
    token = _current.set(RequestContext("req-1", "192.0.2.7", "Firefox"))
    try:
        with frozen_audit_clock(when):
            event = audit_record(
                actor=doctor,
                action=AuditAction.VIEW,
                object_type="records.labresult",
                object_id=42,
                patient=patient,
                reason="Emergency",
                detail={"b": 1, "a": ["x", 2]},
                break_glass=True,
            )
    finally:
        _current.reset(token)
    event = AuditEvent.objects.get(pk=event.pk)  # as stored
    expected = {
        "seq": event.seq,
        "occurred_at": "2026-03-29T00:30:05.123456Z",
        "actor_id": doctor.pk,
        "actor_role": "doctor",
        "action": "view",
        "object_type": "records.labresult",
        "object_id": "42",
        "patient_id": patient.pk,
        "request_id": "req-1",
        "ip_address": "192.0.2.7",
        "user_agent": "Firefox",
        "reason": "Emergency",
        "detail": {"a": ["x", 2], "b": 1},
        "break_glass": True,
    }
    text = json.dumps(expected, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical(row_of(event)) == text
    assert event.hash == hashlib.sha256((event.prev_hash + text).encode()).hexdigest()
    assert event.occurred_at == when


@pytest.mark.django_db
def test_occurred_at_in_another_time_zone_is_hashed_in_utc():
    moscow = dt.timezone(dt.timedelta(hours=3))
    with frozen_audit_clock(dt.datetime(2026, 1, 1, 3, 0, 0, 7, tzinfo=moscow)):
        event = audit_record(actor=None, action=AuditAction.LOGIN_FAILED)
    assert '"occurred_at":"2026-01-01T00:00:00.000007Z"' in canonical(row_of(event))
    stored = AuditEvent.objects.get(pk=event.pk)
    assert link_hash(stored.prev_hash, row_of(stored)) == stored.hash


@pytest.mark.django_db
@pytest.mark.parametrize(
    "ip",
    ["203.0.113.9", "2001:DB8:0:0::1", "::ffff:192.0.2.1", "fe80::1", "not-an-address", ""],
)
def test_values_read_back_from_postgresql_hash_the_same(ip):
    """What is hashed at write time is what the verifier reads back: detail through
    jsonb (floats, tuples, dates, keys), IP addresses through inet."""
    token = _current.set(RequestContext("r", ip, "UA"))
    try:
        event = audit_record(
            actor=None,
            action=AuditAction.EXPORT,
            detail={
                "float": 2.0,
                "big": 1e300,
                "small": 1.5e-7,
                "tuple": (1, "два"),
                "date": dt.date(2026, 3, 29),
                "uuid": uuid.UUID(int=5),
                "money": Decimal("10.50"),
                3: "int key",
                "nested": {"z": None, "a": True},
            },
        )
    finally:
        _current.reset(token)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.hash == link_hash(stored.prev_hash, row_of(stored))
    assert stored.ip_address == event.ip_address
    assert (ip == "not-an-address") <= (stored.ip_address is None)


@pytest.mark.django_db
def test_a_break_glass_access_needs_a_reason(doctor, patient):
    with pytest.raises(ValueError, match="reason"):
        audit_record(actor=doctor, action=AuditAction.VIEW, patient=patient, break_glass=True)
    event = audit_record(
        actor=doctor, action="view", patient=patient, break_glass=True, reason="Unconscious"
    )
    assert AuditEvent.objects.get(pk=event.pk).break_glass is True


@pytest.mark.django_db
def test_a_rolled_back_transaction_leaves_no_row_and_no_gap():
    write_events(2)
    before = AuditEvent.objects.count()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        audit_record(actor=None, action=AuditAction.CREATE, object_type="records.visit")
        raise Boom
    assert AuditEvent.objects.count() == before
    assert not AuditEvent.objects.filter(object_type="records.visit").exists()
    after = audit_record(actor=None, action=AuditAction.CREATE)
    assert after.seq == before + 1
    assert after.prev_hash == AuditEvent.objects.get(seq=before).hash


@pytest.mark.django_db
def test_the_advisory_lock_is_held_until_the_callers_transaction_ends():
    from audit.services import CHAIN_LOCK_KEY

    def lock_held() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = %s",
                [CHAIN_LOCK_KEY & 0xFFFFFFFFFFFFFFFF],
            )
            return cursor.fetchone()[0] > 0

    with transaction.atomic():
        assert not lock_held()
        audit_record(actor=None, action=AuditAction.VIEW)
        assert lock_held()  # still ours after audit_record returned


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_audit_record_wraps_itself():
    assert connection.get_autocommit()
    event = audit_record(actor=None, action=AuditAction.LOGIN_FAILED)
    assert AuditEvent.objects.get(pk=event.pk).hash == event.hash
    event2 = audit_record(actor=None, action=AuditAction.LOGIN_FAILED)
    assert event2.seq == event.seq + 1 and event2.prev_hash == event.hash


@pytest.mark.django_db
def test_obj_gives_type_and_id(patient):
    event = audit_record(actor=patient, action=AuditAction.VIEW, obj=patient, patient=patient)
    assert (event.object_type, event.object_id) == ("accounts.user", str(patient.pk))
    assert event.actor_role == "patient"
