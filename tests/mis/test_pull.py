"""Pull from sekmet-fhir (the MIS) on loopback into the portal: lab reports reach the
patient's results page with ranges and flags after one sync; the same pages pulled twice
change nothing; paging follows `next` links; patients match by identifier only."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.urls import reverse

from audit.models import AuditEvent
from mis import services_sync
from mis.fhir.client import FhirClient
from mis.models import (
    ExternalLink,
    LinkedKind,
    MatchReason,
    MatchState,
    PatientMatchReview,
    QuarantinedResource,
    SyncCursor,
    SyncResourceType,
)
from records.catalogue import test_types_ensure as ensure_test_types
from records.models import LabReport
from tests import factories
from tests.mis import fhir_data as fd

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue(db):
    return ensure_test_types()


@pytest.fixture
def anna(db):
    """A portal patient whose SNILS the MIS knows."""
    return factories.make_patient(snils=fd.SNILS_A, language="en")


def _pull_all(**kwargs):
    return services_sync.sync_pull_all(force=True, **kwargs)


def test_lab_report_from_the_mis_reaches_the_results_page_after_one_sync(
    mis, anna, catalogue, client
):
    mis.transaction([fd.patient("mis-anna", snils=fd.SNILS_A), *fd.cbc("rep-1", "mis-anna")])

    runs = _pull_all()

    assert runs[SyncResourceType.PATIENT].created_count == 1
    assert runs[SyncResourceType.DIAGNOSTIC_REPORT].created_count == 1
    report = LabReport.objects.get(external_id="rep-1")
    assert report.patient == anna.patient_profile
    assert report.released  # CBC is released at once (records' rule for the test type)
    rows = {o.loinc_code: o for o in report.observations.all()}
    assert rows["718-7"].reference_low == 120 and rows["718-7"].reference_high == 160
    assert rows["718-7"].interpretation == "L"
    assert rows["777-3"].interpretation == "H"
    assert rows["6690-2"].interpretation == "N"

    client.force_login(anna)
    listing = client.get(reverse("records:results"), HTTP_ACCEPT_LANGUAGE="en")
    assert listing.status_code == 200
    assert str(report.public_id) in listing.content.decode()
    page = client.get(
        reverse("records:result_detail", args=[report.public_id]), HTTP_ACCEPT_LANGUAGE="en"
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "105" in html and "120\u2013160" in html and "180\u2013320" in html
    assert re.search(r"result-flag--low\">.*?Low", html, re.S)
    assert re.search(r"result-flag--high\">.*?High", html, re.S)
    # Written by the system, audited by records.
    assert AuditEvent.objects.filter(
        actor=None, object_type="records.labreport", object_id=str(report.pk)
    ).exists()


def test_the_same_pages_pulled_twice_change_nothing(mis, anna, catalogue):
    mis.transaction([fd.patient("mis-anna", snils=fd.SNILS_A), *fd.cbc("rep-1", "mis-anna")])
    _pull_all()
    events = AuditEvent.objects.count()
    links = list(ExternalLink.objects.values_list("kind", "value", "version", "object_id"))
    report = LabReport.objects.get(external_id="rep-1")

    # Forget the cursors: the very same pages come again, from the start.
    SyncCursor.objects.update(cursor=None)
    runs = _pull_all()

    for rt, run in runs.items():
        assert (run.created_count, run.updated_count, run.quarantined_count) == (0, 0, 0), rt
    assert runs[SyncResourceType.DIAGNOSTIC_REPORT].unchanged_count == 1
    assert AuditEvent.objects.count() == events
    assert list(ExternalLink.objects.values_list("kind", "value", "version", "object_id")) == links
    assert LabReport.objects.count() == 1
    assert LabReport.objects.get(pk=report.pk).updated_at == report.updated_at


def test_an_amended_report_updates_the_same_row(mis, anna, catalogue):
    mis.transaction([fd.patient("mis-anna", snils=fd.SNILS_A), *fd.cbc("rep-1", "mis-anna")])
    _pull_all()
    amended = fd.cbc("rep-1", "mis-anna", hb=130, status="amended")
    mis.transaction(amended)

    runs = _pull_all()

    assert runs[SyncResourceType.DIAGNOSTIC_REPORT].updated_count == 1
    report = LabReport.objects.get(external_id="rep-1")
    assert report.status == "amended"
    hb = report.observations.get(loinc_code="718-7")
    assert hb.value_quantity == 130 and hb.interpretation == "N"
    assert LabReport.objects.count() == 1


def test_an_observation_changed_alone_is_pulled_with_its_report(mis, anna, catalogue):
    resources = fd.cbc("rep-1", "mis-anna")
    mis.transaction([fd.patient("mis-anna", snils=fd.SNILS_A), *resources])
    _pull_all()
    hb = dict(resources[0], valueQuantity={"value": 99, "unit": "g/L"})
    mis.put(hb)
    report_resource = resources[-1]
    mis.put(report_resource)  # the MIS touches the report when a result changes

    _pull_all()

    assert (
        LabReport.objects.get(external_id="rep-1")
        .observations.get(loinc_code="718-7")
        .value_quantity
        == 99
    )


def test_paging_through_next_links_when_there_is_more_than_a_page(mis, anna, catalogue):
    resources = [fd.patient("mis-anna", snils=fd.SNILS_A)]
    for n in range(12):
        resources += fd.cbc(f"rep-{n:02d}", "mis-anna", hb=100 + n)
    mis.transaction(resources)
    client = FhirClient.from_settings()
    pages = []
    original = client._page  # noqa: SLF001

    def counting(url):  # noqa: ANN001, ANN202
        pages.append(url)
        return original(url)

    client._page = counting  # noqa: SLF001

    cursor = services_sync.sync_pull(
        resource_type=SyncResourceType.PATIENT, client=client, page_size=5, force=True
    )
    pages.clear()
    cursor = services_sync.sync_pull(
        resource_type=SyncResourceType.DIAGNOSTIC_REPORT, client=client, page_size=5, force=True
    )

    assert cursor.created_count == 12 and not cursor.last_error
    assert len(pages) == 3  # 5 + 5 + 2 reports, each page with its included Observations
    assert all("_offset=" in url for url in pages[1:])
    assert LabReport.objects.filter(patient=anna.patient_profile).count() == 12
    assert cursor.cursor is not None


def test_patient_without_identifiers_goes_to_review_never_merged_on_name(
    mis, catalogue, admin_user
):
    # Same name and birth date as the portal patient: still not the same person for us.
    portal = factories.make_patient(
        first_name="Анна", last_name="Иванова", birth_date="1950-03-14", language="en"
    )
    mis.transaction([fd.anonymous_patient("mis-nobody"), *fd.cbc("rep-x", "mis-nobody")])

    runs = _pull_all()

    review = PatientMatchReview.objects.get(resource_id="mis-nobody")
    assert review.reason == MatchReason.NO_IDENTIFIERS and review.state == MatchState.PENDING
    assert "Иванова" in review.summary
    assert not ExternalLink.objects.filter(kind=LinkedKind.PATIENT).exists()
    assert runs[SyncResourceType.DIAGNOSTIC_REPORT].skipped_count == 1
    assert not LabReport.objects.exists()
    # The review text is encrypted at rest.
    with connection.cursor() as cur:
        cur.execute("SELECT summary, raw FROM mis_patientmatchreview WHERE id = %s", [review.pk])
        summary, raw = cur.fetchone()
    assert "Иванова" not in summary and "mis-nobody" not in raw

    # A person decides; the patient's report is fetched on commit.
    from django.test.utils import CaptureQueriesContext  # noqa: F401

    services_sync.patient_match_link(by=admin_user, review=review, patient=portal.patient_profile)
    counts = services_sync.patient_backfill(review=review)
    assert counts.created == 1
    assert LabReport.objects.get(external_id="rep-x").patient == portal.patient_profile
    review.refresh_from_db()
    assert review.state == MatchState.LINKED and review.backfilled_at is not None


def test_snils_that_nobody_has_waits_and_matches_when_the_patient_registers(mis, catalogue):
    mis.transaction([fd.patient("mis-later", snils=fd.SNILS_B), *fd.cbc("rep-l", "mis-later")])
    _pull_all()
    review = PatientMatchReview.objects.get(resource_id="mis-later")
    assert review.reason == MatchReason.NOT_FOUND
    assert not LabReport.objects.exists()

    later = factories.make_patient(snils=fd.SNILS_B)
    assert services_sync.patient_reviews_rematch() == 1
    review.refresh_from_db()
    assert review.state == MatchState.LINKED and review.patient == later.patient_profile
    assert review.pk in services_sync.patient_backfills_due()
    services_sync.patient_backfill(review=review)
    assert LabReport.objects.get(external_id="rep-l").patient == later.patient_profile
    assert review.pk not in services_sync.patient_backfills_due()


def test_mis_id_and_snils_pointing_at_two_patients_is_a_conflict(mis, anna, catalogue):
    other = factories.make_patient(snils=fd.SNILS_B)
    mis.put(fd.patient("mis-anna", snils=fd.SNILS_A))
    _pull_all()
    assert ExternalLink.objects.get(kind=LinkedKind.PATIENT, value="mis-anna").object_id == (
        anna.patient_profile.pk
    )
    mis.put(fd.patient("mis-anna", snils=fd.SNILS_B))  # the MIS now says another SNILS

    _pull_all()

    review = PatientMatchReview.objects.get(resource_id="mis-anna")
    assert review.reason == MatchReason.CONFLICT
    # The existing link stays; nothing moved to the other patient.
    assert ExternalLink.objects.get(kind=LinkedKind.PATIENT, value="mis-anna").object_id == (
        anna.patient_profile.pk
    )
    assert other.patient_profile.pk not in ExternalLink.objects.values_list("object_id", flat=True)


def test_practitioners_become_doctors_once(mis, db):
    from accounts.models import Role, User

    mis.transaction(
        [
            fd.practitioner("pr-1", name="Сидоров Пётр", email="sidorov@clinic.example"),
            fd.practitioner("pr-2", name="Петрова Мария"),
        ]
    )
    _pull_all()
    SyncCursor.objects.update(cursor=None)
    _pull_all()

    links = ExternalLink.objects.filter(kind=LinkedKind.PRACTITIONER)
    assert links.count() == 2
    doctors = User.objects.filter(pk__in=links.values("object_id"))
    assert {d.role for d in doctors} == {Role.DOCTOR}
    assert {d.staff_profile.full_name for d in doctors} == {"Сидоров Пётр", "Петрова Мария"}
    assert User.objects.filter(email="sidorov@clinic.example").count() == 1
    # No password: a doctor from the MIS signs in only after a reset by the clinic.
    assert not doctors.get(email="sidorov@clinic.example").has_usable_password()


def _discharge(did: str, text: str, *, doc_status: str = "final") -> dict:
    import base64

    return {
        "resourceType": "DocumentReference",
        "id": did,
        "status": "current",
        "docStatus": doc_status,
        "type": {"coding": [{"system": fd.LOINC, "code": "18842-5"}], "text": "Discharge summary"},
        "subject": {"reference": "Patient/mis-anna"},
        "description": "Discharge summary",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(text.encode()).decode(),
                }
            }
        ],
    }


def test_document_reference_becomes_a_released_document_once(mis, anna):
    from records.models import Document, DocumentKind

    mis.transaction([fd.patient("mis-anna", snils=fd.SNILS_A), _discharge("doc-1", "Выписка.")])
    runs = _pull_all()
    assert runs[SyncResourceType.DOCUMENT_REFERENCE].created_count == 1, (
        runs[SyncResourceType.DOCUMENT_REFERENCE].__dict__,
        list(QuarantinedResource.objects.values_list("error", flat=True)),
    )
    document = Document.objects.get(patient=anna.patient_profile)
    assert document.kind == DocumentKind.DISCHARGE_SUMMARY
    assert document.body == "Выписка." and document.released

    SyncCursor.objects.update(cursor=None)
    again = _pull_all()
    assert again[SyncResourceType.DOCUMENT_REFERENCE].created_count == 0
    assert Document.objects.count() == 1

    # A changed text is not silently dropped: it is set aside for a person.
    mis.put(_discharge("doc-1", "Другой текст."))
    changed = _pull_all()
    assert changed[SyncResourceType.DOCUMENT_REFERENCE].quarantined_count == 1
    assert Document.objects.get().body == "Выписка."


def test_the_beat_sweep_pulls_every_type_in_order(mis, anna, catalogue, celery_eager):
    from mis import tasks

    mis.transaction([fd.patient("mis-anna", snils=fd.SNILS_A), *fd.cbc("rep-s", "mis-anna")])
    due = tasks.sync_sweep()
    assert due == list(services_sync.PULL_ORDER)
    assert LabReport.objects.filter(external_id="rep-s").exists()
    # Now nothing is backing off and nothing runs: all due again next minute, no error.
    assert not SyncCursor.objects.exclude(last_error="").exists()


def test_the_sweep_does_nothing_without_an_mis(settings, db):
    from mis import tasks

    settings.MIS_FHIR_BASE_URL = ""
    assert tasks.sync_sweep() == []
    assert services_sync.sync_pull(resource_type="Patient") is None
