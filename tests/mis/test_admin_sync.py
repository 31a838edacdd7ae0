"""The MIS pages of the admin: sync status with counts and errors and "retry now", the
quarantine list (audited: it holds personal data), and the review queue where a person
links an MIS patient to a portal patient found by an exact document."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from mis import services_sync
from mis.models import MatchState, PatientMatchReview, QuarantinedResource, SyncCursor
from records.catalogue import test_types_ensure as ensure_test_types
from records.models import LabReport
from tests import factories
from tests.mis import fhir_data as fd

pytestmark = pytest.mark.django_db


def test_sync_status_shows_counts_and_errors_and_retry_now_ends_the_backoff(
    mis_down,
    client,
    login_staff,
    admin_user,
    celery_eager,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    cursor = services_sync.sync_pull(resource_type="Patient")
    assert cursor.next_retry_at is not None
    login_staff(admin_user)

    page = client.get(reverse("admin:mis_synccursor_changelist"), HTTP_ACCEPT_LANGUAGE="en")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Patient" in html and "cannot reach the MIS" in html

    pulled = []
    monkeypatch.setattr(
        "mis.tasks.services_sync.sync_pull",
        lambda resource_type, **kw: pulled.append(resource_type),
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:mis_synccursor_changelist"),
            {"action": "retry_now", "_selected_action": [cursor.pk]},
        )
    assert response.status_code == 302
    cursor.refresh_from_db()
    assert cursor.next_retry_at is None
    assert pulled == ["Patient"]
    assert AuditEvent.objects.filter(
        actor=admin_user, object_type="mis.synccursor", object_id=str(cursor.pk)
    ).exists()


def test_reception_cannot_retry(mis_down, client, login_staff):
    reception = factories.make_staff(Role.RECEPTION)
    cursor = services_sync.sync_pull(resource_type="Patient")
    login_staff(reception)
    response = client.post(
        reverse("admin:mis_synccursor_changelist"),
        {"action": "retry_now", "_selected_action": [cursor.pk]},
    )
    assert response.status_code in (302, 403)
    cursor.refresh_from_db()
    assert cursor.next_retry_at is not None  # unchanged


def test_quarantine_list_and_detail_are_audited(mis, client, login_staff, admin_user):
    broken = fd.patient("bad")
    broken["birthDate"] = "someday"
    mis.inject_raw([broken])
    services_sync.sync_pull(resource_type="Patient", force=True)
    row = QuarantinedResource.objects.get(resource_id="bad")
    login_staff(admin_user)

    listing = client.get(reverse("admin:mis_quarantinedresource_changelist"))
    assert listing.status_code == 200 and "bad" in listing.content.decode()
    detail = client.get(reverse("admin:mis_quarantinedresource_change", args=[row.pk]))
    assert detail.status_code == 200
    assert "someday" in detail.content.decode() and "birthDate" in detail.content.decode()
    assert AuditEvent.objects.filter(
        actor=admin_user,
        action=AuditAction.VIEW,
        object_type="mis.quarantinedresource",
        object_id=str(row.pk),
    ).exists()

    client.post(
        reverse("admin:mis_quarantinedresource_changelist"),
        {"action": "mark_resolved", "_selected_action": [row.pk]},
    )
    row.refresh_from_db()
    assert row.resolved_at is not None


def test_linking_a_review_by_exact_snils_pulls_the_patients_reports(
    mis, client, login_staff, admin_user, celery_eager, django_capture_on_commit_callbacks
):
    ensure_test_types()
    portal = factories.make_patient(snils=fd.SNILS_B)
    mis.transaction([fd.anonymous_patient("mis-x"), *fd.cbc("rep-x", "mis-x")])
    services_sync.sync_pull_all(force=True)
    review = PatientMatchReview.objects.get(resource_id="mis-x")
    login_staff(admin_user)
    url = reverse("admin:mis_patientmatchreview_link", args=[review.pk])

    # A name is not a way to find someone here.
    by_name = client.post(url, {"query": portal.patient_profile.last_name})
    assert "No portal patient" in by_name.content.decode()
    found = client.post(url, {"query": fd.SNILS_B}, HTTP_ACCEPT_LANGUAGE="en")
    assert f'name="confirm" value="{portal.patient_profile.pk}"' in found.content.decode()
    review.refresh_from_db()
    assert review.state == MatchState.PENDING  # nothing until confirmed

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(url, {"query": fd.SNILS_B, "confirm": portal.patient_profile.pk})
    assert done.status_code == 302
    review.refresh_from_db()
    assert review.state == MatchState.LINKED and review.decided_by == admin_user
    assert LabReport.objects.get(external_id="rep-x").patient == portal.patient_profile
    assert review.backfilled_at is not None and review.backfilled_at <= timezone.now()


def test_a_doctor_cannot_open_the_link_page(mis, client, login_staff):
    doctor = factories.make_staff(Role.DOCTOR)
    review = PatientMatchReview.objects.create(
        system="fhir:x", resource_id="p", reason="no_identifiers", raw="{}"
    )
    login_staff(doctor)
    response = client.get(reverse("admin:mis_patientmatchreview_link", args=[review.pk]))
    assert response.status_code in (302, 403)
    assert SyncCursor.objects.count() == 0
