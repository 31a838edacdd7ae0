"""Identity documents, verification by reception, consents — including from the attacker's side."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts import services
from accounts.models import ConsentDecision, ConsentKind, ConsentRecord, IdentityVerification, Role
from audit.models import AuditAction, AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


def _login(client, user):
    client.force_login(user)
    return client


def test_patient_enters_documents_and_bad_input_changes_nothing(client, patient):
    _login(client, patient)
    snils = factories.valid_snils()
    bad = client.post(
        "/portal/me/identity/", {"snils": "112-233-445 96", "passport": "4510 123456"}
    )
    assert bad.status_code == 200
    assert "check digits" in bad.content.decode()
    patient.patient_profile.refresh_from_db()
    assert patient.patient_profile.snils == "" and patient.patient_profile.passport == ""
    ok = client.post(
        "/portal/me/identity/",
        {"snils": snils.replace("-", "").replace(" ", ""), "passport": "4510123456"},
    )
    assert ok.status_code == 302
    patient.patient_profile.refresh_from_db()
    assert patient.patient_profile.snils == snils  # stored in the canonical format
    assert patient.patient_profile.passport == "4510 123456"


def test_upload_is_checked_by_content_not_by_name(client, patient, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    _login(client, patient)
    fake_pdf = SimpleUploadedFile(
        "passport.pdf", b"MZ\x90\x00 this is an executable", content_type="application/pdf"
    )
    response = client.post(
        "/portal/me/identity/",
        {"snils": factories.valid_snils(), "passport": "4510 123456", "scan": fake_pdf},
    )
    assert response.status_code == 200
    assert "not accepted" in response.content.decode()
    patient.patient_profile.refresh_from_db()
    assert not patient.patient_profile.identity_scan
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_reception_verifies_identity_and_a_document_change_revokes_it(
    client, login_staff, reception
):
    patient = factories.make_patient(snils=factories.valid_snils(), passport="4510 654321")
    login_staff(reception)
    page = client.get(f"/portal/staff/patients/{patient.patient_profile.pk}/verify/")
    assert page.status_code == 200
    response = client.post(
        f"/portal/staff/patients/{patient.patient_profile.pk}/verify/",
        {"method": "in_person", "note": ""},
    )
    assert response.status_code == 302
    verification = IdentityVerification.objects.get(patient=patient.patient_profile)
    assert verification.verified_by == reception
    assert patient.patient_profile.identity_verified
    services.patient_profile_update(
        by=patient, profile=patient.patient_profile, passport="4510 111111"
    )
    patient.patient_profile.refresh_from_db()
    assert not patient.patient_profile.identity_verified
    assert IdentityVerification.objects.get().revoked_reason.startswith("documents changed")


def test_verification_needs_both_documents(reception):
    patient = factories.make_patient()
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.identity_verify(by=reception, profile=patient.patient_profile, method="in_person")
    assert not IdentityVerification.objects.exists()


@pytest.mark.parametrize("role", [Role.PATIENT, Role.DOCTOR, Role.NURSE])
def test_only_reception_and_admin_may_verify(client, login_staff, role):
    target = factories.make_patient(snils=factories.valid_snils(), passport="4510 222222")
    if role == Role.PATIENT:
        actor = factories.make_patient()
        client.force_login(actor)
    else:
        actor = factories.make_staff(role)
        login_staff(actor)
    url = f"/portal/staff/patients/{target.patient_profile.pk}/verify/"
    assert client.post(url, {"method": "in_person"}).status_code == 404
    assert not IdentityVerification.objects.exists()


def test_patient_cannot_verify_their_own_identity(patient):
    services.patient_profile_update(
        by=patient,
        profile=patient.patient_profile,
        snils=factories.valid_snils(),
        passport="4510 333333",
    )
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.identity_verify(by=patient, profile=patient.patient_profile, method="in_person")
    assert AuditEvent.objects.filter(actor=patient, action=AuditAction.DENIED).exists()


def test_another_patients_scan_is_not_found(client, patient, other_patient, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    services.identity_scan_upload(
        by=other_patient,
        profile=other_patient.patient_profile,
        upload=SimpleUploadedFile("x.pdf", b"%PDF-1.4 secret scan", content_type="application/pdf"),
    )
    _login(client, patient)
    response = client.get(
        f"/portal/staff/patients/{other_patient.patient_profile.pk}/identity-scan/"
    )
    assert response.status_code == 404
    assert b"secret scan" not in response.content
    # The owner gets it, and the download is recorded.
    client.force_login(other_patient)
    own = client.get(f"/portal/staff/patients/{other_patient.patient_profile.pk}/identity-scan/")
    assert own.status_code == 200 and own.content == b"%PDF-1.4 secret scan"
    assert AuditEvent.objects.filter(action=AuditAction.DOWNLOAD, patient=other_patient).exists()


def test_staff_search_uses_blind_index_and_is_audited(client, login_staff, reception):
    snils = factories.valid_snils()
    patient = factories.make_patient(snils=snils, passport="4510 444444")
    login_staff(reception)
    digits = "".join(c for c in snils if c.isdigit())
    response = client.get("/portal/staff/patients/", {"query": digits})
    assert response.context["found"].pk == patient.patient_profile.pk
    assert AuditEvent.objects.filter(
        actor=reception, action=AuditAction.VIEW, patient=patient
    ).exists()
    assert (
        client.get("/portal/staff/patients/", {"query": patient.email}).context["found"] is not None
    )
    assert client.get("/portal/staff/patients/", {"query": "4510 444445"}).context["found"] is None


def test_patients_and_nurses_cannot_search_patients(client, patient, login_staff):
    client.force_login(patient)
    assert client.get("/portal/staff/patients/", {"query": "x"}).status_code == 404
    client.logout()
    login_staff(factories.make_staff(Role.NURSE))
    assert client.get("/portal/staff/patients/", {"query": "x"}).status_code == 404


def test_consent_give_and_withdraw_keeps_history(client, patient):
    _login(client, patient)
    for decision in ("give", "withdraw", "give"):
        response = client.post(
            "/portal/me/consents/", {"kind": ConsentKind.TELEMEDICINE, "decision": decision}
        )
        assert response.status_code == 302
    records = list(
        ConsentRecord.objects.filter(patient=patient.patient_profile, kind=ConsentKind.TELEMEDICINE)
        .order_by("decided_at", "id")
        .values_list("decision", flat=True)
    )
    assert records == [ConsentDecision.GIVEN, ConsentDecision.WITHDRAWN, ConsentDecision.GIVEN]
    page = client.get("/portal/me/consents/").content.decode()
    assert page.count("<tr>") >= 4  # header + 3 decisions for telemedicine + registration consent


def test_consent_with_unknown_kind_changes_nothing(client, patient):
    _login(client, patient)
    before = ConsentRecord.objects.count()
    response = client.post(
        "/portal/me/consents/", {"kind": "sell_my_data", "decision": "give"}, follow=True
    )
    assert response.status_code == 200
    assert ConsentRecord.objects.count() == before


def test_new_consent_version_marks_earlier_consent_outdated(patient):
    from accounts.selectors import consent_states_for

    services.consent_give(
        by=patient, profile=patient.patient_profile, kind=ConsentKind.TELEMEDICINE
    )
    services.consent_text_publish(
        by=None,
        kind=ConsentKind.TELEMEDICINE,
        title_ru="т",
        title_en="t",
        body_ru="новый текст",
        body_en="new text",
    )
    state = {s.kind: s for s in consent_states_for(patient.patient_profile)}[
        ConsentKind.TELEMEDICINE
    ]
    assert state.given and state.outdated and state.text.version == 2


def test_nobody_gives_consent_for_a_patient(reception, patient):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.consent_give(
            by=reception, profile=patient.patient_profile, kind=ConsentKind.TELEMEDICINE
        )


def test_personal_data_edit_with_bad_phone_changes_nothing(client, patient):
    _login(client, patient)
    response = client.post(
        "/portal/me/details/",
        {
            "last_name": "Новая",
            "first_name": "Анна",
            "middle_name": "",
            "birth_date": "1950-03-14",
            "sex": "female",
            "phone": "not a phone",
            "address": "",
            "insurance_policy": "",
        },
    )
    assert response.status_code == 200 and "phone" in response.context["form"].errors
    patient.patient_profile.refresh_from_db()
    assert patient.patient_profile.last_name != "Новая"
