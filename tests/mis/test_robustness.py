"""The pull when things go wrong: a malformed resource is quarantined and the rest goes
on; the MIS down means retries with backoff while the portal keeps working, and nothing
is lost or duplicated when it returns."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from mis import services_sync
from mis.fhir.client import FhirClient
from mis.models import QuarantinedResource, QuarantineReason, SyncCursor, SyncResourceType
from records.catalogue import test_types_ensure as ensure_test_types
from records.models import LabReport
from tests import factories
from tests.mis import fhir_data as fd

pytestmark = pytest.mark.django_db
DR = SyncResourceType.DIAGNOSTIC_REPORT


@pytest.fixture
def anna(db):
    ensure_test_types()
    return factories.make_patient(snils=fd.SNILS_A, language="en")


def _seed(mis, reports: int) -> None:
    resources = [fd.patient("mis-anna", snils=fd.SNILS_A)]
    for n in range(reports):
        resources += fd.cbc(f"rep-{n:02d}", "mis-anna", hb=100 + n)
    mis.transaction(resources)
    services_sync.sync_pull(resource_type=SyncResourceType.PATIENT, force=True)


def test_a_malformed_resource_is_quarantined_and_the_rest_is_applied(mis, anna):
    _seed(mis, 2)
    broken = fd.cbc("rep-bad", "mis-anna")[-1]
    broken["issued"] = "the day before yesterday"  # not a FHIR instant
    mis.inject_raw([broken])
    _ok = fd.cbc("rep-after", "mis-anna")
    mis.transaction(_ok)

    cursor = services_sync.sync_pull(resource_type=DR, force=True)

    assert not cursor.last_error
    assert cursor.created_count == 3 and cursor.quarantined_count == 1
    assert set(LabReport.objects.values_list("external_id", flat=True)) == {
        "rep-00",
        "rep-01",
        "rep-after",
    }
    row = QuarantinedResource.objects.get(resource_type="DiagnosticReport", resource_id="rep-bad")
    assert row.reason == QuarantineReason.MALFORMED
    assert "issued" in row.error
    assert "the day before yesterday" in row.raw
    assert row.resolved_at is None
    # The JSON (it may hold personal data) is encrypted at rest.
    with connection.cursor() as cur:
        cur.execute("SELECT raw FROM mis_quarantinedresource WHERE id = %s", [row.pk])
        assert "mis-anna" not in cur.fetchone()[0]

    # Pulled again: nothing new (same broken version), nothing duplicated.
    SyncCursor.objects.update(cursor=None)
    again = services_sync.sync_pull(resource_type=DR, force=True)
    assert (again.created_count, again.updated_count, again.quarantined_count) == (0, 0, 0)
    row.refresh_from_db()
    assert row.times_seen == 1

    # Fixed in the MIS: the new version is applied and the quarantine resolved.
    fixed = fd.cbc("rep-bad", "mis-anna")
    mis.transaction(fixed)
    services_sync.sync_pull(resource_type=DR, force=True)
    row.refresh_from_db()
    assert row.resolved_at is not None
    assert LabReport.objects.filter(external_id="rep-bad").count() == 1


def test_a_report_of_an_unknown_test_is_quarantined_with_what_to_do(mis, anna):
    _seed(mis, 0)
    resources = fd.cbc("rep-odd", "mis-anna")
    resources[-1]["code"] = {"coding": [{"system": fd.LOINC, "code": "99999-9"}]}
    mis.transaction(resources)

    cursor = services_sync.sync_pull(resource_type=DR, force=True)

    row = QuarantinedResource.objects.get(resource_id="rep-odd")
    assert cursor.quarantined_count == 1
    assert row.reason == QuarantineReason.MISSING_REFERENCE
    assert "test type" in row.error


def test_mis_down_records_the_error_and_backs_off_while_the_portal_works(mis_down, anna, client):
    now = timezone.now()

    first = services_sync.sync_pull(resource_type=DR, now=now)

    assert first.last_error and "reach" in first.last_error
    assert first.failures == 1
    assert first.next_retry_at == now + timedelta(seconds=30)
    assert first.running_since is None  # the lease is given back
    # Not due yet: the next sweep leaves it alone.
    assert services_sync.sync_pull(resource_type=DR, now=now + timedelta(seconds=10)) is None
    assert DR not in services_sync.sync_due_types(
        system=FhirClient.from_settings().system, now=now + timedelta(seconds=10)
    )
    second = services_sync.sync_pull(resource_type=DR, now=now + timedelta(seconds=31))
    assert second.failures == 2
    assert second.next_retry_at == now + timedelta(seconds=31 + 60)

    # The portal does not need the MIS to show what it has.
    client.force_login(anna)
    response = client.get(reverse("records:results"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200


def test_mis_going_down_midway_loses_nothing_and_duplicates_nothing(mis, anna):
    _seed(mis, 7)
    client = FhirClient.from_settings()
    original = client._page  # noqa: SLF001
    calls = []

    def down_after_first_page(url):  # noqa: ANN001, ANN202
        calls.append(url)
        if len(calls) == 2:
            mis.stop()  # the MIS goes away between two pages
        return original(url)

    client._page = down_after_first_page  # noqa: SLF001
    now = timezone.now()

    broken_run = services_sync.sync_pull(
        resource_type=DR, client=client, page_size=3, now=now, force=True
    )

    assert broken_run.last_error and broken_run.failures == 1
    assert broken_run.created_count == 3  # the first page was applied...
    applied = set(LabReport.objects.values_list("external_id", flat=True))
    assert applied == {"rep-00", "rep-01", "rep-02"}
    assert broken_run.cursor is not None  # ...and the cursor moved past it only

    mis.start()
    later = now + timedelta(minutes=1)
    back = services_sync.sync_pull(resource_type=DR, now=later)  # due: the backoff is over

    assert not back.last_error and back.failures == 0 and back.next_retry_at is None
    assert back.created_count == 4
    assert LabReport.objects.count() == 7
    assert sorted(LabReport.objects.values_list("external_id", flat=True)) == [
        f"rep-{n:02d}" for n in range(7)
    ]


def test_a_resource_changed_during_the_run_holds_the_cursor_back(mis, anna):
    """Offset paging shifts when a resource changes mid-run: the cursor must not pass
    what the shift may have hidden (ADR 0014)."""
    _seed(mis, 6)
    client = FhirClient.from_settings()
    original = client._page  # noqa: SLF001
    calls = []

    def touch_between_pages(url):  # noqa: ANN001, ANN202
        calls.append(url)
        if len(calls) == 2:
            mis.put(fd.cbc("rep-00", "mis-anna", hb=111)[-1])  # moves to the end of the sort
        return original(url)

    client._page = touch_between_pages  # noqa: SLF001

    run = services_sync.sync_pull(resource_type=DR, client=client, page_size=3, force=True)

    # rep-03 shifted into the first page's place and was not read in this run...
    # ...but the cursor stayed at the first page, so the next run reads it.
    services_sync.sync_pull(resource_type=DR, force=True)
    assert LabReport.objects.count() == 6
    assert not run.last_error
