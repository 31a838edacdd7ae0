"""The FHIR client against sekmet-fhir on loopback: auth, strict searches, paging
through `next` links, typed errors, conditional create."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.patient import Patient

from mis.fhir.client import (
    FhirClient,
    MalformedResource,
    MisNotConfigured,
    MisRejected,
    MisUnavailable,
    parse_resource,
)
from tests.mis.sekmet import closed_port_url

MRN = "urn:oid:1.2.643.5.1.13.13.12.2.77.7801"


def _patient(pid: str, family: str = "Petrov") -> dict:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": MRN, "value": pid}],
        "name": [{"family": family, "given": ["Ivan"]}],
    }


def test_bearer_auth_reads_and_a_wrong_token_is_rejected(mis):
    mis.put(_patient("p1"))
    client = FhirClient.from_settings()
    patient = client.read("Patient", "p1")
    assert isinstance(patient, Patient)
    assert patient.name[0].family == "Petrov"

    wrong = FhirClient(base_url=mis.base_url, auth="bearer", token="not-the-token")
    with pytest.raises(MisRejected) as caught:
        wrong.read("Patient", "p1")
    assert caught.value.status == 401
    assert "Invalid" in caught.value.message or "Unsupported" in caught.value.message


def test_basic_auth(mis):
    mis.put(_patient("p2"))
    client = FhirClient(
        base_url=mis.base_url, auth="basic", username=mis.username, password=mis.password
    )
    assert client.read("Patient", "p2").id == "p2"
    bad = FhirClient(base_url=mis.base_url, auth="basic", username=mis.username, password="x")
    with pytest.raises(MisRejected):
        bad.read("Patient", "p2")


def test_no_base_url_means_not_configured(settings):
    settings.MIS_FHIR_BASE_URL = ""
    with pytest.raises(MisNotConfigured):
        FhirClient.from_settings()
    with pytest.raises(MisNotConfigured):
        FhirClient(base_url="http://127.0.0.1:1/fhir", auth="kerberos")


def test_paging_follows_next_links_until_the_end(mis):
    mis.transaction([_patient(f"page-{n:02d}") for n in range(23)])
    client = FhirClient.from_settings()
    pages = list(client.search_pages("Patient", {"_count": "5", "_sort": "_lastUpdated"}))
    assert len(pages) == 5
    assert [len(p.resources) for p in pages] == [5, 5, 5, 5, 3]
    ids = [r["id"] for p in pages for r in p.resources]
    assert sorted(ids) == sorted(f"page-{n:02d}" for n in range(23))
    assert len(set(ids)) == 23
    assert pages[0].total == 23 and pages[-1].next_url is None
    assert pages[0].server_time is not None


def test_strict_handling_makes_unknown_search_parameters_fail(mis):
    client = FhirClient.from_settings()
    with pytest.raises(MisRejected) as caught:
        client.search_page("Patient", {"no-such-parameter": "x"})
    assert caught.value.status == 400
    assert "no-such-parameter" in caught.value.message


def test_a_next_link_to_another_server_is_not_followed(mis):
    client = FhirClient.from_settings()
    with pytest.raises(MisRejected):
        client._page("http://198.51.100.7/fhir/Patient?_offset=5")  # noqa: SLF001


def test_network_failure_is_unavailable():
    client = FhirClient(base_url=closed_port_url(), timeout=2)
    with pytest.raises(MisUnavailable) as caught:
        client.search_page("Patient", {"_count": "1"})
    assert caught.value.retryable


def test_server_down_midway_is_unavailable(mis):
    client = FhirClient.from_settings()
    mis.put(_patient("p3"))
    mis.stop()
    try:
        with pytest.raises(MisUnavailable):
            client.read("Patient", "p3")
    finally:
        mis.start()
    assert client.read("Patient", "p3").id == "p3"


def test_rejected_write_carries_the_operation_outcome(mis):
    client = FhirClient.from_settings()
    with pytest.raises(MisRejected) as caught:
        client.create({"resourceType": "Patient", "birthDate": "not-a-date"})
    assert caught.value.status == 400
    assert caught.value.outcome["resourceType"] == "OperationOutcome"
    assert "birthDate" in caught.value.message


def test_conditional_create_creates_once(mis):
    client = FhirClient.from_settings()
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:portal", "value": "42"}],
        "name": [{"family": "Once"}],
    }
    first, created = client.create(body, if_none_exist="identifier=urn:portal|42")
    again, created_again = client.create(body, if_none_exist={"identifier": "urn:portal|42"})
    assert created and not created_again
    assert first.id == again.id
    assert mis.search("Patient", identifier="urn:portal|42")["total"] == 1


def test_update_with_version_check(mis):
    client = FhirClient.from_settings()
    stored = client.update(_patient("p4", "Before"))
    assert stored.meta.versionId == "1"
    stored.name[0].family = "After"
    updated = client.update(stored, if_match="1")
    assert updated.meta.versionId == "2" and updated.name[0].family == "After"
    with pytest.raises(MisRejected) as caught:
        client.update(stored, if_match="1")  # stale
    assert caught.value.status == 412


def test_parse_resource_says_what_is_wrong():
    with pytest.raises(MalformedResource, match="birthDate"):
        parse_resource({"resourceType": "Patient", "birthDate": "yesterday"})
    with pytest.raises(MalformedResource, match="resourceType"):
        parse_resource({"id": "x"})
    with pytest.raises(MalformedResource, match="expected Patient"):
        parse_resource({"resourceType": "Observation"}, "Patient")
    assert parse_resource(_patient("ok")).id == "ok"
