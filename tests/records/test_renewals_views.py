"""Renewal pages from the patient's side, the doctor's and the attacker's: a patient
asks for a renewal and follows each state; a doctor in charge reviews it from the queue
with the medication history; someone else's request is a recorded 404; a doctor without
a care relationship, a nurse and reception cannot act; reception sees nothing clinical."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse
from django.utils import translation

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from records import services_care
from records.models import RenewalEvent, RenewalRequest, RenewalStatus
from tests import factories
from tests.records.care_helpers import prescription, renewal

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def _html(response) -> str:  # noqa: ANN001
    return response.content.decode()


def _denials(actor, patient=None):  # noqa: ANN001, ANN202
    rows = AuditEvent.objects.filter(actor=actor, action=AuditAction.DENIED)
    return rows.filter(patient=patient) if patient is not None else rows


# --- The patient ---------------------------------------------------------------------------


def test_patient_requests_a_renewal_and_sees_its_state(client, patient, doctor):
    rx = prescription(patient, doctor, medication="Лизиноприл", repeats=2)
    prescription(patient, doctor, medication="Амоксициллин", repeats=0)
    client.force_login(patient)

    page = client.get(reverse("records:care_prescriptions"))
    assert page.status_code == 200
    html = _html(page)
    assert "Лизиноприл" in html and "Амоксициллин" in html
    assert "2 of 2 renewals left" in html
    assert f"?prescription={rx.public_id}" in html  # only the repeat one offers a renewal
    assert html.count("?prescription=") == 1

    form = client.get(reverse("records:care_renewal_new"), {"prescription": rx.public_id})
    assert form.status_code == 200
    assert "Амоксициллин" not in _html(form)  # not a repeat: not offered
    response = client.post(
        reverse("records:care_renewal_new"),
        {
            "prescription": str(rx.public_id),
            "confirmed_dosage": "10 мг утром",
            "pharmacy": "Аптека «Ригла», Садовая 5",
            "notes": "Давление в норме.",
        },
    )
    r = RenewalRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("records:care_renewal", args=[r.public_id])
    detail = client.get(response["Location"])
    html = _html(detail)
    assert "Submitted" in html and "status-badge--pending" in html
    assert "Аптека «Ригла», Садовая 5" in html or "Аптека &laquo;Ригла&raquo;" in html
    assert "A doctor will look at it." in html

    services_care.renewal_request_start_review(by=doctor, renewal=r)
    html = _html(client.get(reverse("records:care_renewals")))
    assert "Under review" in html and "A doctor is reviewing your request." in html
    # The history: each state with who moved it.
    assert html.count("<tr><td>") == 2
    assert "You" in html and doctor.display_name() in html
    assert AuditEvent.objects.filter(
        actor=patient, action=AuditAction.VIEW, object_type="records.renewalrequest"
    ).exists()


def test_bad_input_shows_errors_and_creates_nothing(client, patient, doctor):
    rx = prescription(patient, doctor)
    client.force_login(patient)
    response = client.post(
        reverse("records:care_renewal_new"),
        {"prescription": str(rx.public_id), "confirmed_dosage": "", "pharmacy": ""},
    )
    assert response.status_code == 400
    html = _html(response)
    assert "Confirm the dosage you take." in html
    assert "Enter the pharmacy the prescription should go to." in html
    assert 'aria-invalid="true"' in html
    # Someone else's prescription id is just not one of the choices.
    other_rx = prescription(factories.make_patient(), doctor)
    response = client.post(
        reverse("records:care_renewal_new"),
        {"prescription": str(other_rx.public_id), "confirmed_dosage": "1", "pharmacy": "A"},
    )
    assert response.status_code == 400
    assert "This medication cannot be renewed now" in _html(response)
    assert not RenewalRequest.objects.exists()


def test_a_second_request_while_one_is_open_is_refused_with_a_message(client, patient, doctor):
    rx = prescription(patient, doctor)
    renewal(patient, rx)
    client.force_login(patient)
    page = client.get(reverse("records:care_renewal_new"))
    assert "None of your prescriptions can be renewed online now" in _html(page)
    response = client.post(
        reverse("records:care_renewal_new"),
        {"prescription": str(rx.public_id), "confirmed_dosage": "1", "pharmacy": "A"},
    )
    assert response.status_code == 400
    assert RenewalRequest.objects.count() == 1


def test_rejection_reason_is_shown_to_the_patient(client, patient, doctor):
    r = renewal(patient, prescription(patient, doctor))
    services_care.renewal_request_start_review(by=doctor, renewal=r)
    services_care.renewal_request_reject(by=doctor, renewal=r, reason="Сначала сдайте анализ.")
    client.force_login(patient)
    html = _html(client.get(reverse("records:care_renewal", args=[r.public_id])))
    assert "Rejected" in html and "status-badge--danger" in html
    assert "Сначала сдайте анализ." in html


# --- The attacker --------------------------------------------------------------------------


def test_another_patients_renewal_is_a_recorded_404(client, patient, other_patient, doctor):
    r = renewal(patient, prescription(patient, doctor, medication="Сертралин"))
    client.force_login(other_patient)
    response = client.get(reverse("records:care_renewal", args=[r.public_id]))
    assert response.status_code == 404
    assert "Сертралин" not in _html(response)
    assert _denials(other_patient, patient).exists()
    missing = client.get(reverse("records:care_renewal", args=[uuid.uuid4()]))
    assert missing.status_code == 404
    # Their own lists never show it.
    assert "Сертралин" not in _html(client.get(reverse("records:care_renewals")))
    assert "Сертралин" not in _html(client.get(reverse("records:care_prescriptions")))


def test_staff_cannot_open_the_patient_page_of_a_renewal(client, patient, doctor):
    r = renewal(patient, prescription(patient, doctor))
    client.force_login(doctor)
    assert client.get(reverse("records:care_renewal", args=[r.public_id])).status_code == 404
    assert _denials(doctor, patient).exists()


def test_doctor_without_care_relationship_cannot_see_or_review(client, patient, doctor):
    r = renewal(patient, prescription(patient, doctor, medication="Сертралин"))
    stranger = factories.make_staff(Role.DOCTOR)
    client.force_login(stranger)
    queue = client.get(reverse("records:care_renewal_queue"))
    assert queue.status_code == 200 and "Сертралин" not in _html(queue)
    page = client.get(reverse("records:care_staff_renewal", args=[r.public_id]))
    assert page.status_code == 404
    post = client.post(
        reverse("records:care_staff_renewal", args=[r.public_id]), {"action": "start_review"}
    )
    assert post.status_code == 404
    r.refresh_from_db()
    assert r.status == RenewalStatus.SUBMITTED
    assert _denials(stranger, patient).count() == 2


def test_reception_and_admin_see_nothing_clinical(client, patient, doctor, reception):
    r = renewal(patient, prescription(patient, doctor, medication="Сертралин"))
    admin = factories.make_staff(Role.ADMIN)
    for actor in (reception, admin):
        client.force_login(actor)
        for url in (
            reverse("records:care_renewal_queue"),
            reverse("records:care_staff_renewal", args=[r.public_id]),
            reverse("records:care_patient", args=[patient.patient_profile.pk]),
            reverse("records:care_prescriptions"),
        ):
            response = client.get(url)
            assert response.status_code == 404, (actor.role, url)
            assert "Сертралин" not in _html(response)
        assert _denials(actor, patient).count() == 2


def test_nurse_reads_but_cannot_act(client, patient, doctor):
    from accounts import services as account_services
    from accounts.models import Department

    r = renewal(patient, prescription(patient, doctor))
    nurse = factories.make_staff(Role.NURSE)
    account_services.patient_department_assign(
        by=factories.make_staff(Role.RECEPTION),
        patient=patient.patient_profile,
        department=Department.objects.get(code="main-outpatient"),
    )
    client.force_login(nurse)
    page = client.get(reverse("records:care_staff_renewal", args=[r.public_id]))
    assert page.status_code == 200
    assert "Start review" not in _html(page)
    response = client.post(
        reverse("records:care_staff_renewal", args=[r.public_id]), {"action": "start_review"}
    )
    assert response.status_code == 302
    r.refresh_from_db()
    assert r.status == RenewalStatus.SUBMITTED
    # The queue is for doctors.
    assert client.get(reverse("records:care_renewal_queue")).status_code == 404


# --- The doctor ----------------------------------------------------------------------------


def test_queue_lists_my_patients_requests_with_medication_history(client, patient, doctor):
    rx = prescription(patient, doctor, medication="Лизиноприл")
    prescription(patient, doctor, medication="Аторвастатин", repeats=0)
    old = renewal(patient, rx)
    for step in ("start_review", "approve", "mark_ready", "complete"):
        services_care.RENEWAL_ACTIONS[step](by=doctor, renewal=old)
    current = renewal(patient, rx)
    elsewhere = factories.make_patient()
    renewal(
        elsewhere, prescription(elsewhere, factories.make_staff(Role.DOCTOR), medication="Чужой")
    )

    client.force_login(doctor)
    response = client.get(reverse("records:care_renewal_queue"))
    assert response.status_code == 200
    html = _html(response)
    assert reverse("records:care_staff_renewal", args=[current.public_id]) in html
    assert reverse("records:care_staff_renewal", args=[old.public_id]) not in html  # done
    assert "Чужой" not in html
    # The medication history: both prescriptions, the past renewal with its state.
    assert "Аторвастатин" in html and "Completed" in html
    assert AuditEvent.objects.filter(
        actor=doctor, action=AuditAction.VIEW, patient=patient, detail__what="renewal_queue"
    ).exists()


def test_queue_query_count_does_not_grow_with_history(
    client, patient, doctor, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rx = prescription(patient, doctor)
    renewal(patient, rx)
    client.force_login(doctor)
    with CaptureQueriesContext(connection) as small:
        client.get(reverse("records:care_renewal_queue"))
    for n in range(6):
        prescription(patient, doctor, medication=f"Препарат {n}", repeats=0)
    with CaptureQueriesContext(connection) as large:
        client.get(reverse("records:care_renewal_queue"))
    assert len(large.captured_queries) == len(small.captured_queries)


def test_doctor_walks_a_request_through_from_the_page(client, patient, doctor):
    rx = prescription(patient, doctor)
    r = renewal(patient, rx)
    url = reverse("records:care_staff_renewal", args=[r.public_id])
    client.force_login(doctor)
    page = _html(client.get(url))
    assert "Start review" in page and "Approve renewal" not in page

    assert client.post(url, {"action": "start_review"}).status_code == 302
    page = _html(client.get(url))
    assert "Approve renewal" in page and "Reject the request" in page

    # Reject without a reason: an error on the field, nothing changes.
    response = client.post(url, {"action": "reject", "reason": ""})
    assert response.status_code == 400
    assert "Tell the patient why the request is rejected." in _html(response)
    r.refresh_from_db()
    assert r.status == RenewalStatus.UNDER_REVIEW

    # A step that does not follow: a message, nothing changes.
    response = client.post(url, {"action": "complete"}, follow=True)
    assert "it cannot become" in _html(response)
    r.refresh_from_db()
    assert r.status == RenewalStatus.UNDER_REVIEW

    client.post(url, {"action": "approve"})
    client.post(url, {"action": "mark_sent"})
    response = client.post(url, {"action": "complete"}, follow=True)
    assert "The request is completed." in _html(response)
    r.refresh_from_db()
    assert r.status == RenewalStatus.COMPLETED
    assert RenewalEvent.objects.filter(renewal=r).count() == 5

    assert client.post(url, {"action": "bogus"}).status_code == 302
    r.refresh_from_db()
    assert r.status == RenewalStatus.COMPLETED
