"""The prescription renewal state machine, from the services: every allowed step (with
its history row, its hook on commit and its audit event), every refused step (a clear
message and nothing changed), who may act, and what is encrypted at rest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone, translation

from accounts import services as account_services
from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from records import hooks, services_care
from records.models import (
    RENEWAL_TRANSITIONS,
    Prescription,
    PrescriptionStatus,
    RenewalEvent,
    RenewalRequest,
    RenewalStatus,
)
from tests import factories
from tests.records.care_helpers import grant, prescription, renewal

pytestmark = pytest.mark.django_db

S = RenewalStatus


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def fired():
    """Every prescription_status_changed call, as (renewal_id, patient_user_id, status)."""
    calls: list[tuple] = []

    def handler(**kwargs):  # noqa: ANN003, ANN202
        calls.append((kwargs["renewal_id"], kwargs["patient_user_id"], kwargs["status"]))
        assert set(kwargs) == {"renewal_id", "patient_user_id", "status"}

    hooks.prescription_status_changed.register(handler)
    yield calls
    hooks.prescription_status_changed.unregister(handler)


ACTIONS = {
    S.UNDER_REVIEW: lambda by, r: services_care.renewal_request_start_review(by=by, renewal=r),
    S.APPROVED: lambda by, r: services_care.renewal_request_approve(by=by, renewal=r),
    S.REJECTED: lambda by, r: services_care.renewal_request_reject(
        by=by, renewal=r, reason="Нужен осмотр перед продлением."
    ),
    S.SENT_TO_PHARMACY: lambda by, r: services_care.renewal_request_mark_sent(by=by, renewal=r),
    S.READY: lambda by, r: services_care.renewal_request_mark_ready(by=by, renewal=r),
    S.COMPLETED: lambda by, r: services_care.renewal_request_complete(by=by, renewal=r),
}
# A path to reach each state from "submitted".
PATHS = {
    S.SUBMITTED: [],
    S.UNDER_REVIEW: [S.UNDER_REVIEW],
    S.APPROVED: [S.UNDER_REVIEW, S.APPROVED],
    S.REJECTED: [S.UNDER_REVIEW, S.REJECTED],
    S.SENT_TO_PHARMACY: [S.UNDER_REVIEW, S.APPROVED, S.SENT_TO_PHARMACY],
    S.READY: [S.UNDER_REVIEW, S.APPROVED, S.READY],
    S.COMPLETED: [S.UNDER_REVIEW, S.APPROVED, S.READY, S.COMPLETED],
}


def _walk(doctor, r: RenewalRequest, path: list[str]) -> RenewalRequest:  # noqa: ANN001
    for step in path:
        r = ACTIONS[step](doctor, r)
    return r


def test_full_path_to_the_pharmacy_records_each_step(
    patient, doctor, fired, django_capture_on_commit_callbacks
):
    rx = prescription(patient, doctor, repeats=2)
    with django_capture_on_commit_callbacks(execute=True):
        r = renewal(patient, rx)
    assert r.status == S.SUBMITTED
    for step in (S.UNDER_REVIEW, S.APPROVED, S.SENT_TO_PHARMACY, S.COMPLETED):
        with django_capture_on_commit_callbacks(execute=True):
            r = ACTIONS[step](doctor, r)
        assert r.status == step
        r.refresh_from_db()
        assert r.status == step

    events = list(
        RenewalEvent.objects.filter(renewal=r).values_list("from_status", "to_status", "by")
    )
    assert events == [
        ("", S.SUBMITTED, patient.pk),
        (S.SUBMITTED, S.UNDER_REVIEW, doctor.pk),
        (S.UNDER_REVIEW, S.APPROVED, doctor.pk),
        (S.APPROVED, S.SENT_TO_PHARMACY, doctor.pk),
        (S.SENT_TO_PHARMACY, S.COMPLETED, doctor.pk),
    ]
    # The patient is told of every change (the handler gets ids and the state only).
    assert fired == [
        (r.pk, patient.pk, s)
        for s in (S.SUBMITTED, S.UNDER_REVIEW, S.APPROVED, S.SENT_TO_PHARMACY, S.COMPLETED)
    ]
    rx.refresh_from_db()
    assert rx.repeats_used == 1 and rx.repeats_left == 1
    assert r.reviewer == doctor and r.decided_at is not None
    audit = AuditEvent.objects.filter(object_type="records.renewalrequest", object_id=str(r.pk))
    assert list(audit.order_by("seq").values_list("action", flat=True)) == [
        AuditAction.CREATE,
        *[AuditAction.CHANGE] * 4,
    ]
    assert all(e.patient_id == patient.pk for e in audit)


def test_ready_to_collect_path(patient, doctor):
    r = _walk(doctor, renewal(patient, prescription(patient, doctor)), PATHS[S.COMPLETED])
    assert r.status == S.COMPLETED
    assert [e.to_status for e in r.events.all()] == [
        S.SUBMITTED,
        S.UNDER_REVIEW,
        S.APPROVED,
        S.READY,
        S.COMPLETED,
    ]


def test_reject_needs_a_reason_and_keeps_the_repeat(patient, doctor, fired):
    rx = prescription(patient, doctor, repeats=1)
    r = _walk(doctor, renewal(patient, rx), [S.UNDER_REVIEW])
    for blank in ("", "   "):
        with pytest.raises(ValidationError) as caught:
            services_care.renewal_request_reject(by=doctor, renewal=r, reason=blank)
        assert "reason" in caught.value.message_dict
    r.refresh_from_db()
    assert r.status == S.UNDER_REVIEW

    r = services_care.renewal_request_reject(
        by=doctor, renewal=r, reason="Нужен осмотр: запишитесь на приём."
    )
    r.refresh_from_db()
    assert r.status == S.REJECTED
    assert r.rejection_reason == "Нужен осмотр: запишитесь на приём."
    rx.refresh_from_db()
    assert rx.repeats_used == 0
    # A rejected request is over: the patient may ask again.
    again = renewal(patient, rx)
    assert again.status == S.SUBMITTED


def _refused_cases():
    for start in PATHS:
        for target in ACTIONS:
            if target not in RENEWAL_TRANSITIONS[start]:
                yield pytest.param(start, target, id=f"{start}-to-{target}")


@pytest.mark.parametrize(("start", "target"), list(_refused_cases()))
def test_refused_transitions_change_nothing(patient, doctor, fired, start, target):
    rx = prescription(patient, doctor, repeats=2)
    r = _walk(doctor, renewal(patient, rx), PATHS[start])
    before = (
        RenewalRequest.objects.filter(pk=r.pk).values().get(),
        RenewalEvent.objects.count(),
        AuditEvent.objects.count(),
        Prescription.objects.filter(pk=rx.pk).values("repeats_used", "updated_at").get(),
        len(fired),
    )

    with pytest.raises(ValidationError) as caught:
        ACTIONS[target](doctor, r)

    message = " ".join(caught.value.messages)
    assert str(S(start).label) in message and str(S(target).label) in message
    after = (
        RenewalRequest.objects.filter(pk=r.pk).values().get(),
        RenewalEvent.objects.count(),
        AuditEvent.objects.count(),
        Prescription.objects.filter(pk=rx.pk).values("repeats_used", "updated_at").get(),
        len(fired),
    )
    assert after == before


def test_every_state_has_its_refusals_covered():
    refused = {(c.values[0], c.values[1]) for c in _refused_cases()}
    allowed = {(a, b) for a, targets in RENEWAL_TRANSITIONS.items() for b in targets}
    assert len(refused) + len(allowed) == len(PATHS) * len(ACTIONS)


# --- Submitting ------------------------------------------------------------------------------


def test_only_active_repeat_prescriptions_with_repeats_left_can_be_renewed(patient, doctor):
    single = prescription(patient, doctor, repeats=0, medication="Амоксициллин")
    with pytest.raises(ValidationError, match="not a repeat prescription"):
        renewal(patient, single)

    used_up = prescription(patient, doctor, repeats=1, medication="Метформин")
    _walk(doctor, renewal(patient, used_up), PATHS[S.COMPLETED])
    with pytest.raises(ValidationError, match="All renewals of this prescription are used"):
        renewal(patient, used_up)

    expired = prescription(patient, doctor, repeats=2, medication="Аторвастатин")
    Prescription.objects.filter(pk=expired.pk).update(
        valid_until=timezone.localdate() - timedelta(days=1)
    )
    expired.refresh_from_db()
    with pytest.raises(ValidationError, match="expired"):
        renewal(patient, expired)

    cancelled = prescription(patient, doctor, repeats=2, medication="Бисопролол")
    Prescription.objects.filter(pk=cancelled.pk).update(status=PrescriptionStatus.CANCELLED)
    cancelled.refresh_from_db()
    with pytest.raises(ValidationError, match="cancelled"):
        renewal(patient, cancelled)
    assert RenewalRequest.objects.filter(status=S.SUBMITTED).count() == 0


def test_one_request_in_progress_per_prescription(patient, doctor):
    rx = prescription(patient, doctor)
    first = renewal(patient, rx)
    with pytest.raises(ValidationError, match="already in progress"):
        renewal(patient, rx)
    _walk(doctor, first, [S.UNDER_REVIEW, S.APPROVED])
    with pytest.raises(ValidationError, match="already in progress"):
        renewal(patient, rx)
    assert RenewalRequest.objects.filter(prescription=rx).count() == 1


def test_dosage_and_pharmacy_are_required(patient, doctor):
    rx = prescription(patient, doctor)
    with pytest.raises(ValidationError) as caught:
        services_care.renewal_request_submit(
            by=patient, prescription=rx, confirmed_dosage=" ", pharmacy="Аптека"
        )
    assert "confirmed_dosage" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        services_care.renewal_request_submit(
            by=patient, prescription=rx, confirmed_dosage="10 мг", pharmacy=""
        )
    assert "pharmacy" in caught.value.message_dict
    assert not RenewalRequest.objects.exists()


def test_approval_is_refused_when_the_prescription_was_cancelled_meanwhile(patient, doctor):
    rx = prescription(patient, doctor)
    r = _walk(doctor, renewal(patient, rx), [S.UNDER_REVIEW])
    Prescription.objects.filter(pk=rx.pk).update(status=PrescriptionStatus.CANCELLED)
    with pytest.raises(ValidationError, match="cancelled"):
        services_care.renewal_request_approve(by=doctor, renewal=r)
    r.refresh_from_db()
    rx.refresh_from_db()
    assert r.status == S.UNDER_REVIEW and rx.repeats_used == 0


# --- Who may act -------------------------------------------------------------------------------


def test_another_patient_cannot_ask_to_renew_my_prescription(patient, other_patient, doctor):
    rx = prescription(patient, doctor)
    with pytest.raises(PermissionDenied):
        renewal(other_patient, rx)
    with pytest.raises(PermissionDenied):
        renewal(doctor, rx)
    assert not RenewalRequest.objects.exists()


def test_only_a_doctor_in_charge_reviews(patient, doctor, reception):
    rx = prescription(patient, doctor)
    r = renewal(patient, rx)
    stranger = factories.make_staff(Role.DOCTOR)
    nurse = factories.make_staff(Role.NURSE)
    admin = factories.make_staff(Role.ADMIN)
    for actor in (stranger, nurse, reception, admin, patient):
        with pytest.raises(PermissionDenied):
            services_care.renewal_request_start_review(by=actor, renewal=r)
    # Break-glass is for reading in an emergency, not for approving prescriptions.
    account_services.break_glass_open(
        by=stranger,
        patient=patient.patient_profile,
        reason="Пациент без сознания в приёмном отделении",
    )
    with pytest.raises(PermissionDenied):
        services_care.renewal_request_start_review(by=stranger, renewal=r)
    r.refresh_from_db()
    assert r.status == S.SUBMITTED and r.events.count() == 1


def test_a_doctor_does_not_review_their_own_renewal(doctor):
    # A doctor who is also a patient elsewhere: the role decides, and a patient role
    # is needed to ask; a doctor never reviews a request about their own record.
    colleague = factories.make_staff(Role.DOCTOR)
    patient = factories.make_patient()
    rx = prescription(patient, colleague)
    r = renewal(patient, rx)
    assert services_care.renewal_request_start_review(by=colleague, renewal=r).status == (
        S.UNDER_REVIEW
    )
    with pytest.raises(PermissionDenied):
        services_care.renewal_request_approve(by=doctor, renewal=r)


def test_prescribing_needs_a_care_relationship(patient, doctor, reception):
    with pytest.raises(PermissionDenied):
        services_care.prescription_create(
            by=doctor, patient=patient.patient_profile, medication="X", dosage="1"
        )
    with pytest.raises(PermissionDenied):
        services_care.prescription_create(
            by=reception, patient=patient.patient_profile, medication="X", dosage="1"
        )
    grant(doctor, patient)
    with pytest.raises(ValidationError) as caught:
        services_care.prescription_create(
            by=doctor,
            patient=patient.patient_profile,
            medication="X",
            dosage="1",
            is_repeat=True,
            repeats_allowed=0,
        )
    assert "repeats_allowed" in caught.value.message_dict
    assert not Prescription.objects.exists()


# --- At rest and in messages -------------------------------------------------------------------


def test_medication_pharmacy_and_reason_are_encrypted_at_rest(patient, doctor):
    rx = prescription(patient, doctor, medication="Варфарин", dosage="5 мг вечером")
    r = _walk(doctor, renewal(patient, rx, pharmacy="Аптека на Арбате"), [S.UNDER_REVIEW])
    services_care.renewal_request_reject(by=doctor, renewal=r, reason="Нужен анализ МНО")
    with connection.cursor() as cursor:
        cursor.execute("SELECT medication, dosage FROM records_prescription WHERE id = %s", [rx.pk])
        raw_rx = " ".join(cursor.fetchone())
        cursor.execute(
            "SELECT confirmed_dosage, pharmacy, notes, rejection_reason "
            "FROM records_renewalrequest WHERE id = %s",
            [r.pk],
        )
        raw_r = " ".join(cursor.fetchone())
    for plain in ("Варфарин", "5 мг"):
        assert plain not in raw_rx
    for plain in ("Арбат", "МНО", "Переношу"):
        assert plain not in raw_r
    assert raw_rx.startswith("gAAAA")


def test_hook_messages_carry_no_medication(
    patient, doctor, fired, django_capture_on_commit_callbacks
):
    rx = prescription(patient, doctor, medication="Сертралин")
    with django_capture_on_commit_callbacks(execute=True):
        renewal(patient, rx)
    assert fired and all("Сертралин" not in repr(call) for call in fired)
