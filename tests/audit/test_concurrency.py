"""Concurrent writers in their own transactions still form one linear chain."""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from audit.models import AuditAction, AuditEvent
from audit.services import audit_record

THREADS, EACH = 8, 25


@pytest.mark.django_db(transaction=True)
def test_parallel_writers_form_one_contiguous_chain():
    before = AuditEvent.objects.count()  # reference data written by the fixtures
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(EACH):
                if n % 2:  # half inside a caller's transaction, half in autocommit
                    with transaction.atomic():
                        audit_record(
                            actor=None,
                            action=AuditAction.VIEW,
                            object_type="t",
                            object_id=i,
                            detail={"thread": n},
                        )
                else:
                    audit_record(
                        actor=None,
                        action=AuditAction.VIEW,
                        object_type="t",
                        object_id=i,
                        detail={"thread": n},
                    )
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert AuditEvent.objects.filter(object_type="t").count() == THREADS * EACH
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, before + THREADS * EACH + 1))
    # Writers really interleaved (not one thread after another).
    threads_in_order = list(
        AuditEvent.objects.filter(object_type="t")
        .order_by("seq")
        .values_list("detail__thread", flat=True)
    )
    switches = sum(a != b for a, b in zip(threads_in_order, threads_in_order[1:], strict=False))
    assert switches > THREADS
    call_command("verify_audit_chain")
