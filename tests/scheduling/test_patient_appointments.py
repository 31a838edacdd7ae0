""" "My appointments": lists, details with history, cancel (quote first), move, review;
ownership (another patient's appointment is a recorded 404); constant query count."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from scheduling import services
from scheduling.forms import format_utc_start
from scheduling.models import (
    Appointment,
    AppointmentEventKind,
    AppointmentStatus,
    DoctorReview,
    LateCancellation,
)
from tests import factories
from tests.scheduling.test_patient_booking import Clinic, make_clinic

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic(db) -> Clinic:
    return make_clinic()


def book(clinic: Clinic, patient, index: int = 0, days_ahead: int = 2) -> Appointment:
    slot = clinic.slots(days_ahead=days_ahead)[index]
    return services.appointment_book_slot(
        by=patient,
        patient=patient.patient_profile,
        doctor=clinic.doctor,
        consultation_type=clinic.ctype,
        starts_at=slot.start,
    )


def book_in(clinic: Clinic, patient, hours: float) -> Appointment:
    """An appointment `hours` from now, written directly (the policy tests need times
    off the doctor's grid)."""
    start = timezone.now() + timedelta(hours=hours)
    return Appointment.objects.create(
        patient=patient.patient_profile,
        doctor=clinic.doctor,
        location=clinic.location,
        consultation_type=clinic.ctype,
        status=AppointmentStatus.BOOKED,
        during=DateTimeTZRange(start, start + timedelta(minutes=30)),
    )


def url(name: str, appointment: Appointment) -> str:
    return reverse(f"scheduling:{name}", args=[appointment.public_id])


# --- Lists and details ----------------------------------------------------------------------


def test_my_appointments_upcoming_and_past_with_status_words(client, clinic, patient):
    upcoming = book(clinic, patient)
    cancelled = book(clinic, patient, index=1)
    services.appointment_cancel(by=patient, appointment=cancelled)
    past = book_in(clinic, patient, hours=-48)
    Appointment.objects.filter(pk=past.pk).update(status=AppointmentStatus.COMPLETED)
    client.force_login(patient)

    html = client.get(reverse("scheduling:my_appointments")).content.decode()
    upcoming_part, past_part = html.split('id="past-title"')
    assert url("appointment_detail", upcoming) in upcoming_part
    assert url("appointment_detail", cancelled) in past_part
    assert url("appointment_detail", past) in past_part
    assert 'status-badge status-badge--info">Booked<' in upcoming_part
    assert 'status-badge--danger">Cancelled<' in past_part
    assert 'status-badge--success">Completed<' in past_part
    # Links name appointments by their public UUID, never the row id.
    links = set(re.findall(r'href="(/appointments/[^"/]+/)"', html))
    assert links == {url("appointment_detail", a) for a in (upcoming, cancelled, past)}


def test_my_appointments_query_count_is_constant(
    client, clinic, patient, django_assert_max_num_queries
):
    client.force_login(patient)
    for _ in range(2):
        book(clinic, patient)
    client.get(reverse("scheduling:my_appointments"))  # warm the session and caches
    with django_assert_max_num_queries(99) as few:
        assert client.get(reverse("scheduling:my_appointments")).status_code == 200
    for _ in range(6):
        book(clinic, patient)
    book_in(clinic, patient, hours=-30)
    book_in(clinic, patient, hours=-60)
    assert Appointment.objects.count() == 10
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("scheduling:my_appointments"))
    assert response.content.decode().count("/appointments/") >= 10
    assert len(few.captured_queries) <= 12


def test_detail_shows_facts_and_history(client, clinic, patient):
    appointment = book(clinic, patient)
    client.force_login(patient)
    html = client.get(url("appointment_detail", appointment)).content.decode()
    local = appointment.starts_at.astimezone(clinic.location.tzinfo)
    assert f"{local:%H:%M} (Europe/Moscow)" in html
    assert "Olga Petrova" in html and "Lenina 1, Moscow" in html
    assert "Created: Held for checkout" in html and "Held for checkout → Booked" in html
    assert "by you" in html
    assert url("appointment_reschedule", appointment) in html
    assert url("appointment_cancel", appointment) in html


def test_another_patients_appointment_is_404_and_recorded(client, clinic, patient, other_patient):
    theirs = book(clinic, other_patient)
    client.force_login(patient)
    for name in (
        "appointment_detail",
        "appointment_cancel",
        "appointment_reschedule",
        "appointment_calendar",
        "appointment_review",
    ):
        response = client.get(url(name, theirs))
        assert response.status_code == 404, name
        assert other_patient.patient_profile.last_name not in response.content.decode()
    response = client.post(url("appointment_cancel", theirs), {"quoted_fee": "0"})
    assert response.status_code == 404
    denials = AuditEvent.objects.filter(actor=patient, action=AuditAction.DENIED)
    assert denials.count() == 6
    assert set(denials.values_list("patient", flat=True)) == {other_patient.pk}
    assert Appointment.objects.get(pk=theirs.pk).status == AppointmentStatus.BOOKED
    # A made-up id looks the same and records nothing to a patient.
    missing = client.get(
        reverse("scheduling:appointment_detail", args=["00000000-0000-4000-8000-000000000000"])
    )
    assert missing.status_code == 404


# --- Cancel ---------------------------------------------------------------------------------


def test_cancel_shows_the_free_quote_then_cancels_on_the_second_step(client, clinic, patient):
    appointment = book(clinic, patient)  # two days ahead: free
    client.force_login(patient)
    page = client.get(url("appointment_cancel", appointment))
    assert "Cancelling now is free of charge." in page.content.decode()
    assert Appointment.objects.get(pk=appointment.pk).status == AppointmentStatus.BOOKED
    response = client.post(
        url("appointment_cancel", appointment), {"quoted_fee": "0.00", "reason": "better"}
    )
    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    assert appointment.cancellation_reason == "better"
    html = client.get(response["Location"]).content.decode()
    assert "Your appointment is cancelled." in html
    assert "Booked → Cancelled" in html


def test_late_cancel_shows_the_fee_before_confirming(client, clinic, patient):
    appointment = book_in(clinic, patient, hours=3)
    client.force_login(patient)
    html = client.get(url("appointment_cancel", appointment)).content.decode()
    assert "cancelling costs 500.00 RUB" in html and "Cancel and pay the fee" in html
    # The patient saw "free" earlier (stale page): asked again, nothing changes.
    response = client.post(url("appointment_cancel", appointment), {"quoted_fee": "0"})
    assert response.status_code == 409
    assert "The cancellation conditions have changed" in response.content.decode()
    assert Appointment.objects.get(pk=appointment.pk).status == AppointmentStatus.BOOKED
    response = client.post(url("appointment_cancel", appointment), {"quoted_fee": "500.00"})
    appointment.refresh_from_db()
    assert response.status_code == 302 and appointment.status == AppointmentStatus.CANCELLED
    assert appointment.cancellation_fee == Decimal("500.00")


def test_late_cancel_not_online_says_call_the_clinic(client, patient):
    clinic = make_clinic(late_cancellation=LateCancellation.NOT_ONLINE)
    appointment = book_in(clinic, patient, hours=3)
    client.force_login(patient)
    html = client.get(url("appointment_cancel", appointment)).content.decode()
    assert "Please call the clinic" in html and "+7 495 000-00-00" in html
    assert 'name="quoted_fee"' not in html
    client.post(url("appointment_cancel", appointment), {"quoted_fee": "0"})
    assert Appointment.objects.get(pk=appointment.pk).status == AppointmentStatus.BOOKED
    detail = client.get(url("appointment_detail", appointment)).content.decode()
    assert "It can no longer be moved online" in detail


def test_cancel_with_bad_input_changes_nothing(client, clinic, patient):
    appointment = book(clinic, patient)
    client.force_login(patient)
    response = client.post(url("appointment_cancel", appointment), {"quoted_fee": "lots"})
    assert response.status_code == 400
    assert Appointment.objects.get(pk=appointment.pk).status == AppointmentStatus.BOOKED


# --- Move -----------------------------------------------------------------------------------


def test_reschedule_picks_a_free_slot_and_keeps_history(client, clinic, patient):
    appointment = book(clinic, patient)
    client.force_login(patient)
    picker = client.get(url("appointment_reschedule", appointment))
    assert picker.status_code == 200 and 'hx-trigger="every 12s"' in picker.content.decode()
    target = clinic.slots(days_ahead=3)[2]
    iso = format_utc_start(target.start)
    step = client.get(url("appointment_reschedule", appointment), {"start": iso})
    html = step.content.decode()
    assert "Move my appointment" in html and f"{target.local_start():%H:%M} (Europe/Moscow)" in html
    assert Appointment.objects.get(pk=appointment.pk).starts_at != target.start

    response = client.post(url("appointment_reschedule", appointment), {"start": iso})
    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.starts_at == target.start
    kinds = list(appointment.events.values_list("kind", flat=True))
    assert kinds == [
        AppointmentEventKind.CREATED,
        AppointmentEventKind.STATUS,
        AppointmentEventKind.MOVED,
    ]
    detail = client.get(url("appointment_detail", appointment)).content.decode()
    assert "Your appointment has been moved." in detail and "Moved from" in detail


def test_reschedule_to_a_taken_slot_offers_alternatives(client, clinic, patient, other_patient):
    appointment = book(clinic, patient)
    taken = book(clinic, other_patient, index=3, days_ahead=3)
    client.force_login(patient)
    response = client.post(
        url("appointment_reschedule", appointment), {"start": format_utc_start(taken.starts_at)}
    )
    html = response.content.decode()
    assert response.status_code == 409 and "That time is no longer free" in html
    alternatives = re.findall(r'name="start" value="([^"]+)"', html)
    assert alternatives and format_utc_start(taken.starts_at) not in alternatives
    before = appointment.starts_at
    appointment.refresh_from_db()
    assert appointment.starts_at == before
    client.post(url("appointment_reschedule", appointment), {"start": alternatives[0]})
    appointment.refresh_from_db()
    assert format_utc_start(appointment.starts_at) == alternatives[0]


def test_reschedule_bad_input_and_too_late(client, clinic, patient):
    appointment = book(clinic, patient)
    client.force_login(patient)
    for bad in ("tomorrow", "2020-01-01T09:00:00Z"):
        response = client.post(url("appointment_reschedule", appointment), {"start": bad})
        assert response.status_code == 400
        assert "There is a problem" in response.content.decode()
    late = book_in(clinic, patient, hours=3)
    response = client.get(url("appointment_reschedule", late))
    assert response.status_code == 302
    response = client.post(
        url("appointment_reschedule", late),
        {"start": format_utc_start(clinic.slots(days_ahead=4)[0].start)},
    )
    assert response.status_code == 302
    assert Appointment.objects.get(pk=late.pk).starts_at == late.starts_at
    assert client.get(url("appointment_reschedule_slots", late)).status_code == 200


# --- Review ---------------------------------------------------------------------------------


def test_review_after_a_completed_visit_shows_once_approved(client, clinic, patient, admin_user):
    appointment = book(clinic, patient)
    client.force_login(patient)
    assert client.get(url("appointment_review", appointment)).status_code == 302  # not yet
    Appointment.objects.filter(pk=appointment.pk).update(status=AppointmentStatus.COMPLETED)
    assert client.get(url("appointment_review", appointment)).status_code == 200
    bad = client.post(url("appointment_review", appointment), {"rating": "9"})
    assert bad.status_code == 400 and DoctorReview.objects.count() == 0
    response = client.post(
        url("appointment_review", appointment), {"rating": "5", "text": "Very clear advice"}
    )
    assert response.status_code == 302
    review = DoctorReview.objects.get()
    assert review.rating == 5 and review.status == DoctorReview.Status.PENDING
    profile = reverse("scheduling:doctor", args=[clinic.doctor.pk])
    assert "Very clear advice" not in client.get(profile).content.decode()
    services.review_moderate(by=admin_user, review=review, approve=True)
    html = client.get(profile).content.decode()
    assert "Very clear advice" in html and "5.0 out of 5 (1 review)" in html
    assert patient.patient_profile.last_name not in html
    # A second review of the same visit is refused politely.
    assert client.get(url("appointment_review", appointment)).status_code == 302


def test_calendar_download(client, clinic, patient):
    appointment = book(clinic, patient)
    client.force_login(patient)
    response = client.get(url("appointment_calendar", appointment))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    assert "attachment" in response["Content-Disposition"]
    assert response.content.startswith(b"BEGIN:VCALENDAR\r\n")


def test_staff_get_404_on_patient_appointment_pages(client, clinic, patient, login_staff):
    appointment = book(clinic, patient)
    login_staff(clinic.doctor)
    assert client.get(url("appointment_detail", appointment)).status_code == 404
    assert AuditEvent.objects.filter(
        actor=clinic.doctor, action=AuditAction.DENIED, patient=patient
    ).exists()
    other = factories.make_patient()
    assert other.pk != patient.pk
