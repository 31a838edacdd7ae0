"""Services: receiving results, the release rules, review, release, visits and notes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from records import hooks, services
from records.models import (
    Interpretation,
    LabReport,
    Observation,
    ReleasePolicy,
    ReportStatus,
    ReviewState,
    VisitNote,
)
from tests import factories
from tests.records.helpers import grant, receive, test_types

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture(autouse=True)
def _english():
    """Services' messages follow the active language; these tests read them in English."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def released_hook():
    calls = []

    def handler(**kwargs):  # noqa: ANN003, ANN202
        calls.append(kwargs)

    hooks.results_released.register(handler)
    yield calls
    hooks.results_released.unregister(handler)


def test_immediate_test_is_released_when_final(
    patient, released_hook, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        report = receive(patient, "glucose", ["7.4"])
    assert report.released and report.released_by is None
    assert report.review_state == ReviewState.NOT_REQUIRED
    assert released_hook == [{"report_id": report.pk, "patient_user_id": patient.pk}]
    event = AuditEvent.objects.get(
        object_type="records.labreport", object_id=str(report.pk), action=AuditAction.CREATE
    )
    assert event.patient_id == patient.pk
    # The flag is derived from the range when the laboratory sent none.
    assert report.observations.get().interpretation == Interpretation.HIGH


def test_after_review_test_waits_for_a_doctor(
    patient, released_hook, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        report = receive(patient, "hba1c", ["6.9"])
    assert not report.released
    assert report.review_state == ReviewState.PENDING
    assert released_hook == []


def test_preliminary_is_never_released(patient):
    report = receive(patient, "glucose", ["5.0"], status=ReportStatus.PRELIMINARY)
    assert not report.released
    assert report.review_state == ReviewState.NOT_REQUIRED


def test_review_with_release(patient, doctor, released_hook, django_capture_on_commit_callbacks):
    grant(doctor, patient)
    report = receive(patient, "hba1c", ["6.9"])
    with django_capture_on_commit_callbacks(execute=True):
        reviewed = services.lab_report_review(
            by=doctor, report=report, comment="Сахар выше нормы, обсудим на приёме.", release=True
        )
    assert reviewed.released and reviewed.released_by == doctor
    assert reviewed.review_state == ReviewState.REVIEWED
    assert reviewed.reviewed_by == doctor and reviewed.reviewed_at is not None
    assert released_hook == [{"report_id": report.pk, "patient_user_id": patient.pk}]
    assert AuditEvent.objects.filter(
        object_type="records.labreport",
        object_id=str(report.pk),
        action=AuditAction.REVIEW,
        actor=doctor,
        patient=patient,
    ).exists()


def test_review_without_release_then_release(patient, doctor):
    grant(doctor, patient)
    report = receive(patient, "hba1c", ["6.9"])
    services.lab_report_review(by=doctor, report=report, comment="Норма для вас.", release=False)
    report.refresh_from_db()
    assert not report.released and report.review_state == ReviewState.REVIEWED
    services.lab_report_release(by=doctor, report=report)
    report.refresh_from_db()
    assert report.released


def test_release_needs_the_review_first(patient, doctor):
    grant(doctor, patient)
    report = receive(patient, "hba1c", ["6.9"])
    with pytest.raises(ValidationError):
        services.lab_report_release(by=doctor, report=report)
    report.refresh_from_db()
    assert not report.released


def test_review_needs_a_comment(patient, doctor):
    grant(doctor, patient)
    report = receive(patient, "hba1c", ["6.9"])
    with pytest.raises(ValidationError) as info:
        services.lab_report_review(by=doctor, report=report, comment="   ", release=True)
    assert "comment" in info.value.error_dict
    report.refresh_from_db()
    assert not report.released and report.review_state == ReviewState.PENDING


@pytest.mark.parametrize("role", [Role.NURSE, Role.RECEPTION, Role.ADMIN])
def test_only_doctors_review(patient, role):
    user = factories.make_staff(role)
    report = receive(patient, "hba1c", ["6.9"])
    with pytest.raises(PermissionDenied):
        services.lab_report_review(by=user, report=report, comment="x", release=True)


def test_doctor_without_relationship_cannot_review(patient, doctor):
    doctor.staff_profile.department = None
    doctor.staff_profile.save()
    report = receive(patient, "hba1c", ["6.9"])
    with pytest.raises(PermissionDenied):
        services.lab_report_review(by=doctor, report=report, comment="x", release=True)
    with pytest.raises(PermissionDenied):
        services.lab_report_release(by=doctor, report=report)


def test_patient_cannot_review_or_release_their_own(patient):
    report = receive(patient, "glucose", ["5.0"])
    with pytest.raises(PermissionDenied):
        services.lab_report_review(by=patient, report=report, comment="x", release=True)


def test_same_message_twice_changes_nothing(patient):
    first = receive(patient, "glucose", ["5.0"], source="mis", external_id="DR-1")
    events = AuditEvent.objects.count()
    again = receive(patient, "glucose", ["5.0"], source="mis", external_id="DR-1")
    assert again.pk == first.pk
    assert AuditEvent.objects.count() == events
    assert LabReport.objects.count() == 1 and Observation.objects.count() == 1


def test_amendment_of_a_reviewed_result_goes_back_to_review(
    patient, doctor, released_hook, django_capture_on_commit_callbacks
):
    grant(doctor, patient)
    report = receive(patient, "hba1c", ["6.9"], source="mis", external_id="DR-2")
    services.lab_report_review(by=doctor, report=report, comment="Повышен.", release=True)
    released_hook.clear()
    with django_capture_on_commit_callbacks(execute=True):
        amended = receive(
            patient, "hba1c", ["7.1"], source="mis", external_id="DR-2", status=ReportStatus.AMENDED
        )
    assert amended.pk == report.pk
    assert amended.status == ReportStatus.AMENDED
    assert not amended.released and amended.review_state == ReviewState.PENDING
    assert amended.observations.get().value_quantity == Decimal("7.1")
    assert released_hook == []


def test_amendment_of_an_immediate_result_stays_released_and_tells_the_patient(
    patient, released_hook, django_capture_on_commit_callbacks
):
    receive(patient, "glucose", ["5.0"], source="mis", external_id="DR-3")
    released_hook.clear()
    with django_capture_on_commit_callbacks(execute=True):
        amended = receive(
            patient,
            "glucose",
            ["5.4"],
            source="mis",
            external_id="DR-3",
            status=ReportStatus.AMENDED,
        )
    assert amended.released
    assert len(released_hook) == 1


def test_external_id_of_another_patient_is_refused(patient, other_patient):
    receive(patient, "glucose", ["5.0"], source="mis", external_id="DR-4")
    with pytest.raises(ValidationError):
        receive(other_patient, "glucose", ["5.0"], source="mis", external_id="DR-4")


@pytest.mark.parametrize(
    ("observation", "message"),
    [
        ({"loinc_code": "glucose", "name": "G", "value_quantity": "5"}, "LOINC"),
        ({"loinc_code": "2345-7", "name": "G"}, "no value"),
        ({"loinc_code": "2345-7", "name": "G", "value_quantity": "abc"}, "not a number"),
        (
            {"loinc_code": "2345-7", "name": "G", "value_quantity": "5", "value_text": "x"},
            "more than one",
        ),
        (
            {"loinc_code": "2345-7", "name": "G", "value_quantity": "5", "interpretation": "Q"},
            "interpretation",
        ),
        (
            {
                "loinc_code": "2345-7",
                "name": "G",
                "value_quantity": "5",
                "reference_low": 6,
                "reference_high": 4,
            },
            "range",
        ),
        ({"loinc_code": "2345-7", "name": "G", "value_quantity": "5.123456"}, "digits"),
        ({"loinc_code": "2345-7", "name": "G", "value_quantity": "5", "colour": "red"}, "Unknown"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(patient, observation, message):
    types = test_types()
    with pytest.raises(ValidationError) as info:
        services.lab_report_receive(
            by=None,
            patient=patient.patient_profile,
            test_type=types["glucose"],
            observations=[observation],
        )
    assert message in " ".join(info.value.messages)
    assert LabReport.objects.count() == 0


def test_text_and_coded_values(patient):
    types = test_types()
    report = services.lab_report_receive(
        by=None,
        patient=patient.patient_profile,
        test_type=types["glucose"],
        observations=[
            {"loinc_code": "5778-6", "name": "Color of Urine", "value_text": "соломенно-жёлтый"},
            {
                "loinc_code": "5802-4",
                "name": "Nitrite [Presence] in Urine by Test strip",
                "value_code": "260385009",
                "value_display": "Negative",
                "interpretation": "N",
            },
        ],
    )
    first, second = report.observations.all()
    assert first.value_type == "text" and first.value_text == "соломенно-жёлтый"
    assert second.value_type == "coded" and second.value_display == "Negative"


def test_values_and_texts_are_encrypted_at_rest(patient, doctor):
    grant(doctor, patient)
    report = receive(patient, "hba1c", ["6.9"], conclusion="Гипергликемия")
    services.lab_report_review(
        by=doctor, report=report, comment="Секретный комментарий", release=True
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT value_quantity, interpretation FROM records_observation WHERE report_id = %s",
            [report.pk],
        )
        value, flag = cursor.fetchone()
        cursor.execute(
            "SELECT conclusion, review_comment, performer FROM records_labreport WHERE id = %s",
            [report.pk],
        )
        texts = cursor.fetchone()
    assert "6.9" not in value and value.startswith("gAAAA")
    assert flag.startswith("gAAAA")
    assert all(t.startswith("gAAAA") for t in texts)
    obs = Observation.objects.get(report=report)
    assert obs.value_quantity == Decimal("6.9") and obs.interpretation == "H"


def test_release_policy_is_per_test_type(patient):
    types = test_types()
    types["glucose"].release_policy = ReleasePolicy.AFTER_REVIEW
    types["glucose"].save()
    report = receive(patient, "glucose", ["5.0"])
    assert not report.released and report.review_state == ReviewState.PENDING


# --- Visits and notes -------------------------------------------------------------------


def test_visit_create_release_and_notes(patient, doctor, django_capture_on_commit_callbacks):
    grant(doctor, patient)
    visit = services.visit_create(
        by=doctor,
        patient=patient.patient_profile,
        summary="Рекомендована диета.",
        diagnoses=[{"code": "e11.9", "text": "Сахарный диабет 2 типа"}],
    )
    assert visit.diagnoses.get().code == "E11.9"
    internal = services.visit_note_add(by=doctor, visit=visit, text="Подозрение", internal=True)
    public = services.visit_note_add(by=doctor, visit=visit, text="Пейте воду", internal=False)
    assert internal.internal and not public.internal
    calls = []
    hooks.visit_released.register(handler := lambda **kw: calls.append(kw))
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.visit_release(by=doctor, visit=visit)
    finally:
        hooks.visit_released.unregister(handler)
    visit.refresh_from_db()
    assert visit.released and visit.released_by == doctor
    assert calls == [{"visit_id": visit.pk, "patient_user_id": patient.pk}]
    assert AuditEvent.objects.filter(
        object_type="records.visitnote", object_id=str(internal.pk), action=AuditAction.CREATE
    ).exists()


def test_bad_diagnosis_code_is_refused(patient, doctor):
    grant(doctor, patient)
    with pytest.raises(ValidationError):
        services.visit_create(
            by=doctor,
            patient=patient.patient_profile,
            diagnoses=[{"code": "diabetes", "text": "x"}],
        )


def test_only_the_visits_doctor_releases_it(patient, doctor):
    grant(doctor, patient)
    visit = services.visit_create(by=doctor, patient=patient.patient_profile)
    colleague = factories.make_staff(Role.DOCTOR)
    grant(colleague, patient)
    with pytest.raises(PermissionDenied):
        services.visit_release(by=colleague, visit=visit)


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.ADMIN, Role.PATIENT])
def test_notes_are_written_by_clinicians(patient, doctor, role):
    grant(doctor, patient)
    visit = services.visit_create(by=doctor, patient=patient.patient_profile)
    user = patient if role == Role.PATIENT else factories.make_staff(role)
    with pytest.raises(PermissionDenied):
        services.visit_note_add(by=user, visit=visit, text="x", internal=False)
    assert not VisitNote.objects.exists()


def test_nurse_of_the_department_writes_notes(patient, doctor):
    from accounts.models import Department
    from accounts.services import patient_department_assign

    grant(doctor, patient)
    nurse = factories.make_staff(Role.NURSE)
    reception = factories.make_staff(Role.RECEPTION)
    patient_department_assign(
        by=reception,
        patient=patient.patient_profile,
        department=Department.objects.get(code="main-outpatient"),
    )
    patient.patient_profile.refresh_from_db()
    visit = services.visit_create(by=doctor, patient=patient.patient_profile)
    note = services.visit_note_add(by=nurse, visit=visit, text="Давление 130/85", internal=True)
    assert note.author == nurse


def test_note_under_break_glass_is_flagged(patient):
    from accounts.services import break_glass_open

    owner = factories.make_staff(Role.DOCTOR)
    grant(owner, patient)
    visit = services.visit_create(by=owner, patient=patient.patient_profile)
    stranger = factories.make_staff(Role.DOCTOR)
    stranger.staff_profile.department = None
    stranger.staff_profile.save()
    break_glass_open(
        by=stranger, patient=patient.patient_profile, reason="Пациент без сознания в приёмном"
    )
    note = services.visit_note_add(by=stranger, visit=visit, text="Осмотрен", internal=True)
    event = AuditEvent.objects.get(object_type="records.visitnote", object_id=str(note.pk))
    assert event.break_glass and "без сознания" in event.reason
