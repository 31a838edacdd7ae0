"""Patient booking flow through the Django test client: specialty → doctor → day → time
→ confirm; a slot taken meanwhile; bad input; prepayment holds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role, Specialty, User
from audit.models import AuditAction, AuditEvent
from scheduling import availability, services
from scheduling.forms import format_utc_start
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    ConsultationType,
    DoctorReview,
    LateCancellation,
)
from tests import factories

pytestmark = pytest.mark.django_db
MSK = ZoneInfo("Europe/Moscow")


@dataclass
class Clinic:
    doctor: User
    ctype: ConsultationType
    specialty: Specialty
    location: object

    def slots(self, days_ahead: int = 1, ctype: ConsultationType | None = None):
        day = timezone.now().astimezone(MSK).date() + timedelta(days=days_ahead)
        return availability.free_slots(
            [self.doctor.pk], day, 1, consultation_type=ctype or self.ctype
        )[self.doctor.pk]


def make_clinic(**ctype_fields: object) -> Clinic:
    location = factories.make_location(code="main", time_zone="Europe/Moscow")
    location.name = "Clinic on Lenina"
    location.address = "Lenina 1, Moscow"
    location.phone = "+7 495 000-00-00"
    location.save()
    doctor = factories.make_staff(
        Role.DOCTOR,
        full_name="Olga Petrova",
        languages="Russian, English",
        practising_since=timezone.now().year - 12,
    )
    factories.make_working_week(doctor, location)
    fields = {
        "name_en": "Initial consultation",
        "name_ru": "Первичный приём",
        "free_cancellation_hours": 24,
        "late_cancellation_fee": Decimal("500.00"),
        **ctype_fields,
    }
    ctype = factories.make_consultation_type(doctor, **fields)
    return Clinic(doctor, ctype, ctype.specialty, location)


@pytest.fixture(autouse=True)
def _english(client):
    # Anonymous visitors get the browser's language; signed-in patients their own ("en").
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


def next_free(clinic: Clinic):
    from scheduling.selectors.patient import availability_for

    return availability_for(clinic.doctor, clinic.ctype).next_slots(1)[0]


@pytest.fixture
def clinic(db) -> Clinic:
    return make_clinic()


def confirm_url(clinic: Clinic, start, ctype: ConsultationType | None = None) -> str:
    iso = start if isinstance(start, str) else format_utc_start(start)
    return reverse("scheduling:book_confirm") + (
        f"?doctor={clinic.doctor.pk}&type={(ctype or clinic.ctype).pk}&start={iso}"
    )


def post_data(clinic: Clinic, start, **extra: object) -> dict:
    iso = start if isinstance(start, str) else format_utc_start(start)
    return {"doctor": clinic.doctor.pk, "type": clinic.ctype.pk, "start": iso, **extra}


# --- Browsing ---------------------------------------------------------------------------


def test_specialty_list_and_doctors_are_public(client, clinic):
    response = client.get(reverse("scheduling:book"))
    assert response.status_code == 200
    assert "General practitioner" in response.content.decode()
    page = client.get(reverse("scheduling:book_specialty", args=[clinic.specialty.code]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Olga Petrova" in html and "12 years" in html and "Russian, English" in html
    first = next_free(clinic)
    assert f"{first.local_start():%H:%M} (Europe/Moscow)" in html
    assert format_utc_start(first.start).replace(":", "%3A") in html
    assert client.get(reverse("scheduling:book_specialty", args=["nope"])).status_code == 404


def test_doctor_profile_shows_rating_reviews_and_polling_slots(client, clinic, patient):
    # Two completed visits with reviews: one approved, one waiting for moderation.
    reviews = []
    for rating, text in ((4, "Attentive and kind"), (1, "Pending words")):
        slot = clinic.slots(days_ahead=len(reviews) + 2)[0]
        appointment = services.appointment_book_slot(
            by=patient,
            patient=patient.patient_profile,
            doctor=clinic.doctor,
            consultation_type=clinic.ctype,
            starts_at=slot.start,
        )
        Appointment.objects.filter(pk=appointment.pk).update(status=AppointmentStatus.COMPLETED)
        reviews.append(
            services.review_submit(by=patient, appointment=appointment, rating=rating, text=text)
        )
    reviews[0].status = DoctorReview.Status.APPROVED
    reviews[0].save()

    response = client.get(reverse("scheduling:doctor", args=[clinic.doctor.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "4.0 out of 5 (1 review)" in html
    assert "Attentive and kind" in html and "Pending words" not in html
    assert "12 years" in html and "Lenina 1, Moscow" in html
    assert 'hx-trigger="every 12s"' in html and "data-slot-poll" in html
    assert "Times are the clinic's local time (Europe/Moscow)" in html
    # The time buttons lead to the confirm page with doctor, type and UTC start.
    first = next_free(clinic)
    link = f"?doctor={clinic.doctor.pk}&amp;type={clinic.ctype.pk}&amp;start="
    assert link + format_utc_start(first.start).replace(":", "%3A") in html


def test_slots_partial_for_a_day(client, clinic):
    day = timezone.now().astimezone(MSK).date() + timedelta(days=3)
    url = reverse("scheduling:doctor_slots", args=[clinic.doctor.pk])
    response = client.get(
        url, {"type": clinic.ctype.pk, "day": day.isoformat()}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html  # a fragment for htmx
    times = re.findall(r">(\d\d:\d\d)<span class=\"visually-hidden\"> \(Europe/Moscow\)", html)
    assert times == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "12:00", "12:30"]
    assert 'aria-current="date"' in html
    # A time someone books disappears on the next poll.
    slot = clinic.slots(days_ahead=3)[0]
    other = factories.make_patient()
    services.appointment_book_slot(
        by=other,
        patient=other.patient_profile,
        doctor=clinic.doctor,
        consultation_type=clinic.ctype,
        starts_at=slot.start,
    )
    html = client.get(url, {"type": clinic.ctype.pk, "day": day.isoformat()}).content.decode()
    assert ">09:00<" not in html and ">09:30<" in html
    # Nonsense parameters fall back to the defaults rather than failing.
    assert client.get(url, {"type": "x", "day": "31-02-2020"}).status_code == 200


def test_unknown_or_non_doctor_profile_is_404(client, clinic, reception):
    assert client.get(reverse("scheduling:doctor", args=[reception.pk])).status_code == 404
    assert client.get(reverse("scheduling:doctor", args=[987654])).status_code == 404


# --- Confirm and book ---------------------------------------------------------------------


def test_full_flow_books_with_the_policy_shown_first(client, clinic, patient):
    client.force_login(patient)
    slot = clinic.slots()[1]
    page = client.get(confirm_url(clinic, slot.start))
    html = page.content.decode()
    assert page.status_code == 200
    local = slot.local_start()
    assert f"{local:%H:%M} (Europe/Moscow)" in html
    assert "Lenina 1, Moscow" in html and "Initial consultation" in html
    assert "2,500.00 RUB" in html or "2500.00 RUB" in html
    assert "free of charge until 24 hours before it starts" in html
    assert "cancelling costs 500.00 RUB" in html
    assert "Confirm booking" in html
    assert Appointment.objects.count() == 0  # looking books nothing

    response = client.post(
        reverse("scheduling:book_confirm"), post_data(clinic, slot.start, note="Knee pain")
    )
    appointment = Appointment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "scheduling:appointment_booked", args=[appointment.public_id]
    )
    assert appointment.status == AppointmentStatus.BOOKED
    assert appointment.patient == patient.patient_profile
    assert appointment.starts_at == slot.start and appointment.patient_note == "Knee pain"
    done = client.get(response["Location"])
    text = done.content.decode()
    assert done.status_code == 200 and "Your appointment is booked" in text
    assert reverse("scheduling:appointment_calendar", args=[appointment.public_id]) in text


def test_slot_taken_meanwhile_shows_alternatives_and_books_one(client, clinic, patient):
    client.force_login(patient)
    slot = clinic.slots()[2]
    assert client.get(confirm_url(clinic, slot.start)).status_code == 200
    rival = factories.make_patient()
    services.appointment_book_slot(
        by=rival,
        patient=rival.patient_profile,
        doctor=clinic.doctor,
        consultation_type=clinic.ctype,
        starts_at=slot.start,
    )
    response = client.post(
        reverse("scheduling:book_confirm"), post_data(clinic, slot.start, note="keep me")
    )
    html = response.content.decode()
    assert response.status_code == 409
    assert "This time is no longer free" in html and "Nothing was booked for you" in html
    starts = re.findall(r'name="start" value="([^"]+)"', html)
    assert starts and format_utc_start(slot.start) not in starts
    assert format_utc_start(slot.start + timedelta(minutes=30)) in starts
    assert "keep me" in html  # the note survives
    assert Appointment.objects.filter(patient=patient.patient_profile).count() == 0

    response = client.post(
        reverse("scheduling:book_confirm"), post_data(clinic, starts[0], note="keep me")
    )
    assert response.status_code == 302
    mine = Appointment.objects.get(patient=patient.patient_profile)
    assert format_utc_start(mine.starts_at) == starts[0] and mine.patient_note == "keep me"


def test_confirming_twice_finds_the_booking_already_made(client, clinic, patient):
    client.force_login(patient)
    slot = clinic.slots()[1]
    data = post_data(clinic, slot.start)
    first = client.post(reverse("scheduling:book_confirm"), data)
    again = client.post(reverse("scheduling:book_confirm"), data)  # back button, resubmit
    appointment = Appointment.objects.get()
    assert first.status_code == again.status_code == 302
    assert again["Location"] == reverse(
        "scheduling:appointment_detail", args=[appointment.public_id]
    )
    assert "You have already booked this time." in client.get(again["Location"]).content.decode()


def test_confirm_page_for_a_taken_slot_offers_alternatives(client, clinic, patient):
    client.force_login(patient)
    slot = clinic.slots()[0]
    rival = factories.make_patient()
    services.appointment_book_slot(
        by=rival,
        patient=rival.patient_profile,
        doctor=clinic.doctor,
        consultation_type=clinic.ctype,
        starts_at=slot.start,
    )
    response = client.get(confirm_url(clinic, slot.start))
    assert response.status_code == 200
    assert "This time is no longer free" in response.content.decode()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("start", "2030-01-01 10:00", "The chosen time could not be read"),
        ("start", "2030-02-30T10:00:00Z", "The chosen time could not be read"),
        ("start", "2030-01-01T10:00:00+03:00", "The chosen time could not be read"),
        ("start", "", "Please choose a time"),
        ("start", "2020-01-01T10:00:00Z", "This time has already passed"),
        ("doctor", "abc", "The chosen doctor could not be found"),
        ("doctor", "99999999999999", "The chosen doctor could not be found"),
        ("type", "-1", "The chosen type of visit could not be found"),
    ],
)
def test_bad_input_gets_a_clear_message_and_changes_nothing(
    client, clinic, patient, field, value, message
):
    client.force_login(patient)
    data = post_data(clinic, clinic.slots()[0].start)
    data[field] = value
    for response in (
        client.post(reverse("scheduling:book_confirm"), data),
        client.get(reverse("scheduling:book_confirm"), data),
    ):
        assert response.status_code == 400
        html = response.content.decode()
        assert message in html and "There is a problem" in html
        assert "Nothing was booked" in html
    assert Appointment.objects.count() == 0


def test_doctor_not_offering_the_type_or_not_a_doctor(client, clinic, patient, reception):
    client.force_login(patient)
    foreign = factories.make_consultation_type(factories.make_staff(Role.DOCTOR))
    start = clinic.slots()[0].start
    data = post_data(clinic, start, type=foreign.pk)
    response = client.post(reverse("scheduling:book_confirm"), data)
    assert response.status_code == 400
    assert "This doctor does not offer this type of visit" in response.content.decode()
    response = client.post(
        reverse("scheduling:book_confirm"), post_data(clinic, start, doctor=reception.pk)
    )
    assert response.status_code == 400
    assert "The chosen doctor could not be found" in response.content.decode()
    assert Appointment.objects.count() == 0


def test_a_start_off_the_grid_is_treated_as_taken(client, clinic, patient):
    client.force_login(patient)
    odd = clinic.slots()[0].start + timedelta(minutes=7)
    response = client.post(reverse("scheduling:book_confirm"), post_data(clinic, odd))
    assert response.status_code == 409
    assert "This time is no longer free" in response.content.decode()
    assert Appointment.objects.count() == 0


def test_confirm_without_parameters_goes_back_to_the_start(client, clinic, patient):
    client.force_login(patient)
    response = client.get(reverse("scheduling:book_confirm"))
    assert response.status_code == 302 and response["Location"] == reverse("scheduling:book")


def test_prepayment_holds_the_slot_and_hands_over_to_the_checkout(client, patient):
    clinic = make_clinic(prepayment_required=True)
    client.force_login(patient)
    slot = clinic.slots()[0]
    page = client.get(confirm_url(clinic, slot.start)).content.decode()
    assert "Continue to payment" in page and "paid in advance" in page
    response = client.post(reverse("scheduling:book_confirm"), post_data(clinic, slot.start))
    held = Appointment.objects.get()
    assert held.status == AppointmentStatus.HELD and held.hold_expires_at > timezone.now()
    assert response["Location"] == reverse("scheduling:appointment_payment", args=[held.public_id])
    # With payments installed, the page hands over to its checkout (scheduling asks the
    # hook, never imports payments).
    handover = client.get(response["Location"])
    assert handover.status_code == 302
    assert handover["Location"] == reverse("payments:checkout", args=[held.public_id])
    # Without a checkout (no app answers the hook) the page only says the time is held.
    from payments import workflows
    from scheduling import hooks

    hooks.appointment_checkout_url.unregister(workflows.checkout_url)
    try:
        html = client.get(response["Location"]).content.decode()
    finally:
        hooks.appointment_checkout_url.register(workflows.checkout_url)
    local_expiry = held.hold_expires_at.astimezone(MSK).strftime("%H:%M")
    assert f"held for you until {local_expiry} (Europe/Moscow)" in html
    assert "Online payment is not available in the portal yet" in html
    held.refresh_from_db()
    assert held.status == AppointmentStatus.HELD  # nothing faked
    # Once the hold is over, the payment page sends the patient to the details.
    Appointment.objects.filter(pk=held.pk).update(
        hold_expires_at=timezone.now() - timedelta(seconds=1)
    )
    later = client.get(reverse("scheduling:appointment_payment", args=[held.public_id]))
    assert later.status_code == 302


def test_staff_and_patients_without_a_profile_get_404_recorded(
    client, clinic, login_staff, reception
):
    login_staff(reception)
    url = confirm_url(clinic, clinic.slots()[0].start)
    assert client.get(url).status_code == 404
    assert AuditEvent.objects.filter(actor=reception, action=AuditAction.DENIED).exists()
    client.logout()
    bare = User.objects.create_user(email="bare@example.org", password=factories.PASSWORD)
    client.force_login(bare)
    assert client.get(url).status_code == 404
    assert client.get(reverse("scheduling:my_appointments")).status_code == 404
    assert AuditEvent.objects.filter(actor=bare, action=AuditAction.DENIED).count() == 2


def test_late_cancellation_not_online_is_explained_before_booking(client, patient):
    clinic = make_clinic(late_cancellation=LateCancellation.NOT_ONLINE)
    client.force_login(patient)
    html = client.get(confirm_url(clinic, clinic.slots()[0].start)).content.decode()
    assert "cannot be cancelled or moved online: please call the clinic" in html


def test_times_are_shown_in_the_locations_zone(client, patient):
    doctor = factories.make_staff(Role.DOCTOR, full_name="Ivan Ural")
    ekb = factories.make_location(code="ekb", time_zone="Asia/Yekaterinburg")
    factories.make_working_week(doctor, ekb, start="09:00", end="10:00")
    ctype = factories.make_consultation_type(doctor)
    clinic = Clinic(doctor, ctype, ctype.specialty, ekb)
    day = timezone.now().astimezone(ZoneInfo("Asia/Yekaterinburg")).date() + timedelta(days=2)
    slot = availability.free_slots([doctor.pk], day, 1, consultation_type=ctype)[doctor.pk][0]
    assert slot.start.astimezone(ZoneInfo("UTC")).strftime("%H:%M") == "04:00"

    html = client.get(
        reverse("scheduling:doctor", args=[doctor.pk]), {"day": day.isoformat()}
    ).content.decode()
    assert '>09:00<span class="visually-hidden"> (Asia/Yekaterinburg)' in html
    assert "local time (Asia/Yekaterinburg)" in html
    client.force_login(patient)  # the portal shows patients Moscow time elsewhere
    page = client.get(confirm_url(clinic, slot.start)).content.decode()
    assert "09:00 (Asia/Yekaterinburg)" in page
