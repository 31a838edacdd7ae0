"""A patient's access log, the break-glass queue and its reviews."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import Role
from audit.models import AuditAction, AuditEvent, BreakGlassReview, ReviewOutcome
from audit.selectors import access_log_for_patient, break_glass_events
from audit.services import audit_record, break_glass_review
from tests import factories

pytestmark = pytest.mark.django_db


def _break_glass(actor, patient, reason="Brought in unconscious"):
    return audit_record(
        actor=actor,
        action=AuditAction.VIEW,
        object_type="accounts.patientprofile",
        object_id=patient.patient_profile.pk,
        patient=patient,
        reason=reason,
        break_glass=True,
    )


def test_access_log_shows_others_opening_my_record_newest_first(
    patient, other_patient, doctor, reception, django_assert_num_queries
):
    first = audit_record(actor=doctor, action=AuditAction.VIEW, obj=patient, patient=patient)
    audit_record(actor=patient, action=AuditAction.VIEW, obj=patient, patient=patient)  # me
    audit_record(actor=None, action=AuditAction.LOGIN_FAILED, patient=patient)  # no actor
    audit_record(actor=doctor, action=AuditAction.VIEW, patient=other_patient)  # someone else
    second = audit_record(
        actor=reception, action=AuditAction.DOWNLOAD, obj=patient, patient=patient
    )
    with django_assert_num_queries(1):
        log = list(access_log_for_patient(patient))
        names = [event.actor.staff_profile.full_name for event in log]
    assert [event.pk for event in log] == [second.pk, first.pk]
    assert names == [reception.staff_profile.full_name, doctor.staff_profile.full_name]
    assert list(access_log_for_patient(other_patient).values_list("actor", flat=True)) == [
        doctor.pk
    ]


def test_break_glass_events_only_for_admins_with_review_state(admin_user, doctor, patient):
    access = _break_glass(doctor, patient)
    audit_record(actor=doctor, action=AuditAction.VIEW, patient=patient)
    [event] = break_glass_events(admin_user)
    assert event.pk == access.pk and event.review_outcome is None
    assert not break_glass_events(doctor).exists()
    assert not break_glass_events(patient).exists()
    plain_admin = factories.make_staff(Role.ADMIN)  # by role, not superuser
    assert break_glass_events(plain_admin).count() == 1

    break_glass_review(by=admin_user, event=access, outcome=ReviewOutcome.JUSTIFIED)
    [event] = break_glass_events(admin_user)
    assert event.review_outcome == "justified"


def test_a_review_is_recorded_in_the_trail(admin_user, doctor, patient):
    access = _break_glass(doctor, patient)
    review = break_glass_review(
        by=admin_user, event=access, outcome="unjustified", note="No emergency on file"
    )
    assert review.reviewed_by == admin_user and review.note == "No emergency on file"
    recorded = AuditEvent.objects.get(action=AuditAction.REVIEW)
    assert recorded.actor == admin_user and recorded.patient == patient
    assert recorded.object_type == "audit.breakglassreview"
    assert recorded.object_id == str(review.pk)
    assert recorded.detail == {"event_seq": access.seq, "outcome": "unjustified"}
    assert "emergency" not in str(recorded.detail).lower()  # the note stays out of the log


def test_review_rules(admin_user, doctor, patient):
    access = _break_glass(doctor, patient)
    with pytest.raises(PermissionDenied):
        break_glass_review(by=doctor, event=access, outcome="justified")
    own = _break_glass(admin_user, patient)
    with pytest.raises(PermissionDenied):
        break_glass_review(by=admin_user, event=own, outcome="justified")
    ordinary = audit_record(actor=doctor, action=AuditAction.VIEW, patient=patient)
    with pytest.raises(ValidationError) as not_break_glass:
        break_glass_review(by=admin_user, event=ordinary, outcome="justified")
    assert "event" in not_break_glass.value.message_dict
    with pytest.raises(ValidationError) as no_note:
        break_glass_review(by=admin_user, event=access, outcome="unjustified", note=" ")
    assert "note" in no_note.value.message_dict
    with pytest.raises(ValidationError):
        break_glass_review(by=admin_user, event=access, outcome="maybe")
    assert not BreakGlassReview.objects.exists()
