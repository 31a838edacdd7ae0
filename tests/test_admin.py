"""Django admin: everything registered, personal data read-only, views audited, behind MFA."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin

from accounts.models import Role, User
from audit.models import AuditAction, AuditEvent
from tests import factories

PROJECT_APPS = {
    "accounts",
    "audit",
    "scheduling",
    "records",
    "telemedicine",
    "payments",
    "notifications",
    "mis",
}

pytestmark = pytest.mark.django_db


def test_every_project_model_is_registered():
    missing = [
        model._meta.label
        for model in apps.get_models()
        if model._meta.app_label in PROJECT_APPS and model not in admin.site._registry
    ]
    assert missing == []


def test_admin_change_view_of_a_patient_is_audited_and_read_only(client, login_staff, admin_user):
    patient = factories.make_patient(last_name="Ершова")
    login_staff(admin_user)
    url = f"/admin/accounts/patientprofile/{patient.patient_profile.pk}/change/"
    response = client.get(url)
    assert response.status_code == 200
    assert "Ершова" in response.content.decode()
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.VIEW, patient=patient
    ).exists()
    # A POST cannot change anything: the page is view-only.
    client.post(url, {"last_name": "Подменённая"})
    patient.patient_profile.refresh_from_db()
    assert patient.patient_profile.last_name == "Ершова"


def test_role_change_in_admin_goes_through_the_service(client, login_staff, admin_user):
    target = factories.make_staff(Role.NURSE)
    login_staff(admin_user)
    response = client.post(
        f"/admin/accounts/user/{target.pk}/change/",
        {"role": Role.RECEPTION, "language": "ru", "is_active": "on"},
    )
    assert response.status_code == 302, response.content[:2000]
    target.refresh_from_db()
    assert target.role == Role.RECEPTION
    assert list(target.groups.values_list("name", flat=True)) == [Role.RECEPTION]
    assert AuditEvent.objects.filter(
        action=AuditAction.ROLE_CHANGE, object_id=str(target.pk)
    ).exists()


def test_admin_cannot_raise_their_own_role_or_demote_themselves(admin_user):
    from django.core.exceptions import PermissionDenied

    from accounts.services import user_set_role

    with pytest.raises(PermissionDenied):
        user_set_role(by=admin_user, user=admin_user, role=Role.PATIENT)
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN


@pytest.mark.parametrize("role", [Role.DOCTOR, Role.NURSE, Role.RECEPTION])
def test_clinical_staff_have_no_admin_site(client, login_staff, role):
    user = factories.make_staff(role)
    login_staff(user)
    response = client.get("/admin/accounts/patientprofile/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_patients_have_no_admin_site(client, patient):
    client.force_login(patient)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert User.objects.get(pk=patient.pk).is_staff is False
