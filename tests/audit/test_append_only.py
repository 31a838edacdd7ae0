"""The append-only trigger: UPDATE and DELETE are refused by PostgreSQL itself."""

from __future__ import annotations

import pytest
from django.db import ProgrammingError, connection, transaction

from audit.models import AuditEvent, BreakGlassReview
from audit.services import break_glass_review
from tests.audit.conftest import write_events

pytestmark = pytest.mark.django_db

REFUSED = "Cannot update or delete rows"


@pytest.fixture
def event() -> AuditEvent:
    write_events(3)
    return AuditEvent.objects.get(seq=2)


def test_orm_save_of_an_existing_row_is_refused(event):
    event.reason = "edited"
    with pytest.raises(ProgrammingError, match=REFUSED), transaction.atomic():
        event.save()


def test_queryset_update_is_refused(event):
    with pytest.raises(ProgrammingError, match=REFUSED), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="delete")


def test_orm_delete_is_refused(event):
    with pytest.raises(ProgrammingError, match=REFUSED), transaction.atomic():
        event.delete()
    with pytest.raises(ProgrammingError, match=REFUSED), transaction.atomic():
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET reason = 'edited' WHERE id = %s",
        "UPDATE audit_auditevent SET seq = seq + 1000 WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ],
)
def test_raw_sql_update_and_delete_are_refused(event, sql):
    with (
        pytest.raises(ProgrammingError, match=REFUSED),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [event.pk])
    event.refresh_from_db()
    assert event.reason == "" and event.seq == 2


def test_break_glass_reviews_are_append_only_too(admin_user, doctor, patient):
    from audit.services import audit_record

    access = audit_record(
        actor=doctor, action="view", patient=patient, reason="Unconscious", break_glass=True
    )
    review = break_glass_review(by=admin_user, event=access, outcome="justified")
    with pytest.raises(ProgrammingError, match=REFUSED), transaction.atomic():
        BreakGlassReview.objects.filter(pk=review.pk).update(outcome="unjustified")
    with (
        pytest.raises(ProgrammingError, match=REFUSED),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM audit_breakglassreview WHERE id = %s", [review.pk])


def test_inserting_stays_possible(event):
    write_events(1)
    assert AuditEvent.objects.count() == 4
