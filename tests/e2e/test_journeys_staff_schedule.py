"""Browser journey through the staff schedule: reception signs in with an authenticator
code, books a patient into a free slot of a doctor in another time zone, and the booking
shows on the doctor's day list — for reception and for the doctor. Every screen is
checked with axe-core; the page fixtures fail on console errors and CSP violations."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Role
from scheduling.models import Appointment, AppointmentSource, AppointmentStatus
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in_staff

ZONE = "Asia/Yekaterinburg (UTC+05:00)"


def _en(user):
    user.language = "en"
    user.save(update_fields=["language"])
    return user


def test_reception_books_a_patient_and_the_doctor_sees_it(live_server, page, console, new_page):
    location = factories.make_location(code="ekb", time_zone="Asia/Yekaterinburg")
    doctor = _en(factories.make_staff(Role.DOCTOR, full_name="Анна Уральская"))
    doctor.staff_profile.location = location
    doctor.staff_profile.save()
    factories.make_working_week(doctor, location)
    factories.make_consultation_type(doctor, name_en="Check-up")
    snils = factories.valid_snils()
    patient = factories.make_patient(first_name="Вера", last_name="Записная", snils=snils)
    reception = _en(factories.make_staff(Role.RECEPTION))
    tomorrow = timezone.now().astimezone(ZoneInfo("Asia/Yekaterinburg")).date() + timedelta(1)

    sign_in_staff(page, reception)
    expect(page.get_by_role("heading", level=1)).to_have_text("Workplace")
    # The workplace card lists the doctors (loaded with htmx).
    card = page.get_by_role("region", name="Doctors' schedules")
    expect(card.get_by_role("link", name="Анна Уральская")).to_be_visible()
    assert_accessible(page)

    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Schedules").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Schedule")
    assert_accessible(page)
    page.get_by_role("link", name="Book — Анна Уральская").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Book for a patient: Анна Уральская")
    assert_accessible(page)
    page.get_by_label("Patient's SNILS, passport or email").fill(snils)
    page.get_by_role("button", name="Find").click()

    expect(page.get_by_role("main")).to_contain_text("Записная Вера")
    assert snils not in page.url and snils.replace("-", "").replace(" ", "") not in page.url
    page.get_by_label("Date").fill(tomorrow.isoformat())
    page.get_by_role("button", name="Show free times").click()
    times = page.get_by_role("group", name="Time")
    expect(times.get_by_role("radio")).to_have_count(8)
    assert_accessible(page)
    times.get_by_label(f"09:30 — {ZONE}").check()
    page.get_by_role("button", name="Book", exact=True).click()

    # Back on the doctor's day, with the booking in the location's own time.
    expect(page).to_have_url(re.compile(rf"/staff/schedule/doctors/{doctor.pk}/day/\?date="))
    expect(page.get_by_role("status")).to_contain_text("Booked: Записная Вера")
    row = page.get_by_role("row").filter(has_text="Записная Вера")
    expect(row).to_contain_text("09:30–10:00")
    expect(row).to_contain_text(ZONE)
    expect(row).to_contain_text("Booked")
    expect(row.get_by_role("button", name=re.compile("^Check in"))).to_be_visible()
    assert_accessible(page)
    appointment = Appointment.objects.get(patient=patient.patient_profile)
    assert appointment.status == AppointmentStatus.BOOKED
    assert appointment.source == AppointmentSource.RECEPTION

    page.get_by_role("link", name="Week", exact=True).click()
    expect(page.get_by_role("table")).to_contain_text("Booked")
    assert_accessible(page)
    console.assert_clean()

    # The doctor signs in elsewhere and finds the patient on their list for that day.
    doctor_page = new_page(locale="en-US")
    sign_in_staff(doctor_page, doctor)
    doctor_page.get_by_role("navigation", name="Main menu").get_by_role(
        "link", name="My day"
    ).click()
    expect(doctor_page.get_by_role("heading", level=1)).to_have_text("My day")
    doctor_page.get_by_role("link", name="Next day").click()
    row = doctor_page.get_by_role("row").filter(has_text="Записная Вера")
    expect(row).to_contain_text("09:30–10:00")
    expect(row.get_by_role("link", name="Записная Вера", exact=True)).to_have_attribute(
        "href", f"/portal/staff/patients/{patient.patient_profile.pk}/"
    )  # to the record
    expect(row.get_by_role("button", name=re.compile("^No-show"))).to_be_visible()
    assert_accessible(doctor_page)
