"""Care relationships, departments, break-glass, and the patient's access log."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts import policies, selectors, services
from accounts.models import BreakGlassAccess, Department, Role
from audit.models import AuditAction, AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def department():
    return Department.objects.get_or_create(
        code="main-outpatient",
        defaults={"name": "Outpatient", "location": factories.make_location()},
    )[0]


@pytest.fixture
def doctor_elsewhere(department):
    """A doctor whose department is not the patient's: access only by grant or break-glass."""
    doctor = factories.make_staff(Role.DOCTOR)
    doctor.staff_profile.department = Department.objects.create(
        code="cardio", name="Cardiology", location=department.location
    )
    doctor.staff_profile.save()
    return doctor


def test_care_grant_gives_and_revoke_takes_record_access(patient, doctor_elsewhere):
    profile = patient.patient_profile
    assert not policies.can_view_patient_record(doctor_elsewhere, profile)
    services.care_access_grant(
        by=None, doctor=doctor_elsewhere, patient=profile, reason="appointment 1"
    )
    doctor = type(doctor_elsewhere).objects.get(pk=doctor_elsewhere.pk)  # fresh permission cache
    assert policies.can_view_patient_record(doctor, profile)
    assert list(selectors.patients_in_care_of(doctor)) == [profile]
    services.care_access_revoke(by=None, doctor=doctor, patient=profile, reason="cancelled")
    doctor = type(doctor).objects.get(pk=doctor.pk)
    assert not policies.can_view_patient_record(doctor, profile)
    assert AuditEvent.objects.filter(patient=patient, detail__care_access="revoked").exists()


def test_department_gives_nurses_and_doctors_access(patient, reception, department):
    nurse = factories.make_staff(Role.NURSE)  # factories put staff in main-outpatient
    profile = patient.patient_profile
    assert not policies.can_view_patient_record(nurse, profile)
    services.patient_department_assign(by=reception, patient=profile, department=department)
    profile.refresh_from_db()
    assert policies.can_view_patient_record(nurse, profile)
    assert list(selectors.patients_in_care_of(nurse)) == [profile]


def test_reception_and_admin_never_see_the_record(patient, reception, admin_user, department):
    services.patient_department_assign(
        by=reception, patient=patient.patient_profile, department=department
    )
    profile = patient.patient_profile
    profile.refresh_from_db()
    for user in (reception, admin_user):
        assert policies.can_view_patient_demographics(user, profile)
        assert not policies.can_view_patient_record(user, profile)
        assert not policies.can_view_clinical_item(
            user, profile, released_to_patient=True, internal=False
        )


def test_patients_see_only_released_and_never_internal_items(patient, other_patient):
    own = patient.patient_profile
    assert policies.can_view_clinical_item(patient, own, released_to_patient=True, internal=False)
    assert not policies.can_view_clinical_item(
        patient, own, released_to_patient=False, internal=False
    )
    assert not policies.can_view_clinical_item(
        patient, own, released_to_patient=True, internal=True
    )
    assert not policies.can_view_clinical_item(
        patient, other_patient.patient_profile, released_to_patient=True, internal=False
    )


def test_only_admins_or_the_system_manage_care_grants(patient, doctor_elsewhere, reception):
    with pytest.raises(PermissionDenied):
        services.care_access_grant(
            by=reception, doctor=doctor_elsewhere, patient=patient.patient_profile, reason="x"
        )
    with pytest.raises(PermissionDenied):
        services.care_access_grant(
            by=doctor_elsewhere,
            doctor=doctor_elsewhere,
            patient=patient.patient_profile,
            reason="x",
        )


def test_break_glass_flow_is_flagged_time_limited_and_visible(
    client, login_staff, patient, doctor_elsewhere, admin_user
):
    profile = patient.patient_profile
    login_staff(doctor_elsewhere)
    assert client.get(f"/portal/staff/patients/{profile.pk}/").status_code == 404
    form = client.get(f"/portal/staff/patients/{profile.pk}/break-glass/")
    assert form.status_code == 200
    assert profile.last_name not in form.content.decode()  # nothing shown before the reason
    short = client.post(f"/portal/staff/patients/{profile.pk}/break-glass/", {"reason": "need it"})
    assert short.status_code == 200 and not BreakGlassAccess.objects.exists()
    reason = "Patient brought unconscious to the emergency room"
    opened = client.post(f"/portal/staff/patients/{profile.pk}/break-glass/", {"reason": reason})
    assert opened.status_code == 302
    record = client.get(opened["Location"])
    assert record.status_code == 200 and profile.last_name in record.content.decode()
    event = AuditEvent.objects.get(action=AuditAction.BREAK_GLASS)
    assert event.break_glass and event.reason == reason and event.patient == patient
    # Views under break-glass are flagged too.
    assert AuditEvent.objects.filter(
        action=AuditAction.VIEW, patient=patient, break_glass=True
    ).exists()
    # The patient sees it, with the reason.
    client.logout()
    client.force_login(patient)
    log = client.get("/portal/me/access-log/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert doctor_elsewhere.staff_profile.full_name in log and reason in log
    # It expires.
    BreakGlassAccess.objects.update(expires_at=timezone.now() - timezone.timedelta(minutes=1))
    doctor = type(doctor_elsewhere).objects.get(pk=doctor_elsewhere.pk)
    assert not policies.can_view_patient_record(doctor, profile)


def test_break_glass_is_for_doctors_only(patient, reception):
    nurse = factories.make_staff(Role.NURSE)
    for user in (reception, nurse, patient):
        with pytest.raises(PermissionDenied):
            services.break_glass_open(
                by=user, patient=patient.patient_profile, reason="a sufficiently long reason here"
            )
    assert not BreakGlassAccess.objects.exists()


def test_break_glass_needs_a_real_reason(patient, doctor_elsewhere):
    with pytest.raises(ValidationError):
        services.break_glass_open(
            by=doctor_elsewhere, patient=patient.patient_profile, reason="   x   "
        )
    assert not BreakGlassAccess.objects.exists()


def test_patient_sees_a_doctors_view_of_their_record_newest_first(
    client, login_staff, patient, doctor_elsewhere
):
    services.care_access_grant(
        by=None, doctor=doctor_elsewhere, patient=patient.patient_profile, reason="appointment"
    )
    login_staff(doctor_elsewhere)
    assert client.get(f"/portal/staff/patients/{patient.patient_profile.pk}/").status_code == 200
    client.logout()
    client.force_login(patient)
    client.get("/portal/me/details/")  # recorded, but not listed: it is the patient's own
    assert AuditEvent.objects.filter(
        actor=patient,
        patient=patient,
        action=AuditAction.VIEW,
        detail__page="accounts:personal_data",
    ).exists()
    page = client.get("/portal/me/access-log/", HTTP_ACCEPT_LANGUAGE="en")
    rows = list(page.context["page"].object_list)
    assert rows, "the doctor's view is missing"
    assert all(event.actor_id != patient.pk for event in rows)
    assert rows[0].actor_id == doctor_elsewhere.pk
    assert "your medical record" in page.content.decode()
    times = [event.occurred_at for event in rows]
    assert times == sorted(times, reverse=True)


def test_access_log_is_paginated(client, patient, reception):
    from audit.services import audit_record

    for _ in range(30):
        audit_record(
            actor=reception, action=AuditAction.VIEW, obj=patient.patient_profile, patient=patient
        )
    client.force_login(patient)
    first = client.get("/portal/me/access-log/")
    assert len(first.context["page"].object_list) == 25
    second = client.get("/portal/me/access-log/?page=2")
    assert len(second.context["page"].object_list) == 5


def test_doctor_search_without_care_shows_no_name(client, login_staff, doctor_elsewhere):
    snils = factories.valid_snils()
    target = factories.make_patient(last_name="Скрытова", snils=snils)
    login_staff(doctor_elsewhere)
    response = client.get("/portal/staff/patients/", {"query": snils})
    html = response.content.decode()
    assert "Скрытова" not in html
    assert f"/portal/staff/patients/{target.patient_profile.pk}/break-glass/" in html
