"""Browser journeys through booking: specialty → doctor → day → time → confirm, with
the free times refreshing by htmx polling; and the issue's "done when": another client
takes the slot while the patient is on the confirm page, the patient gets the
informative "slot taken" page with the nearest free times and books one of them.

axe-core runs on every screen; the `page` fixture fails on console errors and CSP
violations.
"""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone
from playwright.sync_api import Page, expect

from scheduling import services
from scheduling.models import Appointment, AppointmentStatus
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in
from tests.scheduling.test_patient_booking import make_clinic

MSK = ZoneInfo("Europe/Moscow")


def _day_link(day) -> re.Pattern:  # noqa: ANN001
    """The day strip's link ("Sun 22 November, 8 free times"), not a "next free time"
    link of the same day ("Sun 22 November, 09:00 (Europe/Moscow)")."""
    return re.compile("^" + re.escape(_day_label(day)) + r"\s*,\s*\d+ free time")


def _day_label(day) -> str:  # noqa: ANN001
    """The day strip's label in English: "Tue 5 May"."""
    return f"{day:%a} {day.day} {day:%B}"


def _book_as(patient, clinic, start) -> Appointment:  # noqa: ANN001
    return services.appointment_book_slot(
        by=patient,
        patient=patient.patient_profile,
        doctor=clinic.doctor,
        consultation_type=clinic.ctype,
        starts_at=start,
    )


def test_patient_books_through_specialty_doctor_day_and_time(live_server, page: Page, console):
    clinic = make_clinic()
    patient = factories.make_patient(first_name="Vera", language="en")
    tomorrow = timezone.now().astimezone(MSK).date() + timedelta(days=1)
    slots = clinic.slots(days_ahead=1)  # 09:00, 09:30, ... Moscow time

    page.clock.install()  # htmx polls with timers: let the test move time on
    sign_in(page, patient.email)
    page.get_by_role("navigation", name="Main menu").get_by_role(
        "link", name="Book an appointment"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Book an appointment")
    assert_accessible(page)

    page.get_by_role("link", name="General practitioner").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("General practitioner")
    expect(page.get_by_text("12 years")).to_be_visible()
    assert_accessible(page)

    page.get_by_role("link", name="Olga Petrova", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Olga Petrova")
    assert_accessible(page)

    page.get_by_role("link", name=_day_link(tomorrow)).click()
    picker = page.locator("#slot-picker")
    expect(picker.get_by_role("heading", level=2, name=re.compile("Free times on"))).to_be_visible()
    expect(picker).to_contain_text("Times are the clinic's local time (Europe/Moscow).")
    assert_accessible(page)

    # Someone books 09:30 elsewhere; the next poll (every 12 s) takes it off the page.
    expect(picker.get_by_role("link", name=re.compile(r"^09:30"))).to_be_visible()
    _book_as(factories.make_patient(), clinic, slots[1].start)
    with page.expect_response(re.compile(r"/book/doctor/\d+/slots/")):
        page.clock.run_for(13_000)
    expect(picker.get_by_role("link", name=re.compile(r"^09:30"))).to_have_count(0)
    expect(picker.get_by_role("link", name=re.compile(r"^09:00"))).to_be_visible()

    picker.get_by_role("link", name=re.compile(r"^09:00")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your appointment")
    main = page.get_by_role("main")
    expect(main).to_contain_text("09:00 (Europe/Moscow)")
    expect(main).to_contain_text("Lenina 1, Moscow")
    expect(main).to_contain_text("free of charge until 24 hours before it starts")
    expect(main).to_contain_text("cancelling costs 500.00 RUB")
    assert_accessible(page)
    page.get_by_label("Note for the doctor").fill("Follow-up on blood pressure")
    page.get_by_role("button", name="Confirm booking").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Your appointment is booked")
    expect(page.get_by_role("status").first).to_contain_text("Your appointment is booked.")
    assert_accessible(page)
    appointment = Appointment.objects.get(patient=patient.patient_profile)
    assert appointment.status == AppointmentStatus.BOOKED
    assert appointment.starts_at == slots[0].start

    page.get_by_role("link", name="My appointments", exact=True).last.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My appointments")
    upcoming = page.get_by_role("region", name="Upcoming")
    expect(upcoming.get_by_text("Booked", exact=True)).to_be_visible()
    assert_accessible(page)
    upcoming.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    expect(page.get_by_role("link", name="Cancel appointment")).to_be_visible()
    assert_accessible(page)
    console.assert_clean()


def test_slot_taken_by_another_client_shows_alternatives_and_books_one(
    live_server, page: Page, console
):
    clinic = make_clinic()
    patient = factories.make_patient(language="en")
    rival = factories.make_patient(language="en")
    slot = clinic.slots(days_ahead=2)[3]
    local = slot.local_start()

    sign_in(page, patient.email)
    page.goto(
        f"/book/confirm/?doctor={clinic.doctor.pk}&type={clinic.ctype.pk}"
        f"&start={slot.start:%Y-%m-%dT%H:%M:%SZ}"
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your appointment")
    expect(page.get_by_role("main")).to_contain_text(f"{local:%H:%M} (Europe/Moscow)")
    assert_accessible(page)

    # Another client takes the same slot first (the ORM through the booking service).
    _book_as(rival, clinic, slot.start)
    page.get_by_label("Note for the doctor").fill("Please call me before")
    page.get_by_role("button", name="Confirm booking").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("This time is no longer free")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Someone else booked this time a moment ago.")
    expect(alert).to_be_focused()
    alternatives = page.get_by_role("region", name="Nearest free times").get_by_role(
        "button", name=re.compile(r"^Book ")
    )
    expect(alternatives.first).to_be_visible()
    assert alternatives.count() >= 2
    expect(page.get_by_role("button", name=re.compile(f"{local:%H:%M}"))).to_have_count(0)
    expect(page.get_by_label("Note for the doctor")).to_have_value("Please call me before")
    assert_accessible(page)

    earlier = f"{local - timedelta(minutes=30):%H:%M}"
    nearest = alternatives.filter(has_text=earlier)
    expect(nearest).to_have_count(1)
    nearest.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your appointment is booked")
    assert_accessible(page)
    mine = Appointment.objects.get(patient=patient.patient_profile)
    theirs = Appointment.objects.get(patient=rival.patient_profile)
    assert mine.status == theirs.status == AppointmentStatus.BOOKED
    assert mine.starts_at != theirs.starts_at
    assert mine.starts_at == slot.start - timedelta(minutes=30)
    assert mine.patient_note == "Please call me before"
    console.assert_clean()


def test_patient_moves_cancels_and_reviews(live_server, page: Page, console):
    clinic = make_clinic()
    patient = factories.make_patient(language="en")
    first = clinic.slots(days_ahead=3)[0]
    appointment = _book_as(patient, clinic, first.start)
    visited = _book_as(patient, clinic, clinic.slots(days_ahead=4)[0].start)
    Appointment.objects.filter(pk=visited.pk).update(status=AppointmentStatus.COMPLETED)
    target = clinic.slots(days_ahead=5)[2]

    sign_in(page, patient.email)
    page.goto(f"/appointments/{appointment.public_id}/")
    assert_accessible(page)
    page.get_by_role("link", name="Move to another time").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Move appointment")
    assert_accessible(page)
    page.get_by_role("link", name=_day_link(target.local_start().date())).click()
    page.locator("#slot-picker").get_by_role(
        "link", name=re.compile(f"^{target.local_start():%H:%M}")
    ).click()
    expect(page.get_by_role("heading", name="New time")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Move my appointment").click()
    expect(page.get_by_role("status").first).to_contain_text("Your appointment has been moved.")
    expect(
        page.get_by_role("table", name=re.compile("^Changes to this appointment"))
    ).to_contain_text("Moved from")
    assert_accessible(page)
    appointment.refresh_from_db()
    assert appointment.starts_at == target.start

    page.get_by_role("link", name="Cancel appointment").click()
    expect(page.get_by_role("main")).to_contain_text("Cancelling now is free of charge.")
    assert_accessible(page)
    page.get_by_label("Reason").fill("Feeling better")
    page.get_by_role("button", name="Yes, cancel the appointment").click()
    expect(page.get_by_role("status").first).to_contain_text("Your appointment is cancelled.")
    expect(page.get_by_text("Status: Cancelled")).to_be_visible()
    assert_accessible(page)

    page.goto(f"/appointments/{visited.public_id}/")
    page.get_by_role("link", name="Rate and review this visit").click()
    page.get_by_role("button", name="Send review").click()  # no rating yet: an error
    expect(page.get_by_role("alert")).to_contain_text("Please choose a rating from 1 to 5.")
    assert_accessible(page)
    page.get_by_label("4 — good").check()
    page.get_by_role("button", name="Send review").click()
    expect(page.get_by_role("status").first).to_contain_text("Thank you.")
    expect(page.get_by_text("Waiting for approval")).to_be_visible()
    assert_accessible(page)
    console.assert_clean()
