"""Admin of documents, PDF jobs and verification codes: registered, read-only, audited,
no clinical content shown; the one action revokes a printed PDF's code."""

from __future__ import annotations

import pytest

from audit.models import AuditAction, AuditEvent
from tests.records.helpers import grant
from tests.records.helpers_documents import issue_rendered, media  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def test_document_admin_shows_no_content_and_is_audited(
    client, login_staff, admin_user, patient, doctor
):
    grant(doctor, patient)
    document = issue_rendered(
        doctor, patient, title="Направление к неврологу", body="Мигрень с аурой."
    )
    login_staff(admin_user)
    listing = client.get("/admin/records/document/")
    assert listing.status_code == 200
    change = client.get(f"/admin/records/document/{document.pk}/change/")
    assert change.status_code == 200
    for response in (listing, change):
        html = response.content.decode()
        assert "Направление к неврологу" not in html and "Мигрень" not in html
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.VIEW, object_type="records.document", patient=patient
    ).exists()
    # Read-only: a POST changes nothing.
    client.post(f"/admin/records/document/{document.pk}/change/", {"kind": "certificate"})
    document.refresh_from_db()
    assert document.kind == "referral"
    for path in ("/admin/records/pdfrender/", "/admin/records/documentverification/"):
        assert client.get(path).status_code == 200


def test_admin_revokes_a_code_and_finds_it_as_printed(
    client, login_staff, admin_user, patient, doctor
):
    grant(doctor, patient)
    code = issue_rendered(doctor, patient).verifications.get()
    login_staff(admin_user)
    found = client.get("/admin/records/documentverification/", {"q": code.display_code.lower()})
    assert code.code in found.content.decode()
    response = client.post(
        "/admin/records/documentverification/",
        {"action": "revoke", "_selected_action": [code.pk]},
    )
    assert response.status_code == 302
    code.refresh_from_db()
    assert code.revoked and code.revoked_reason == "withdrawn"
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.CHANGE, object_type="records.documentverification"
    ).exists()
