"""Browser journey through the doctor's consultation screen (issue 8, item 6): the doctor
opens the screen of a video appointment under way, sees the patient's results with their
flags (words and an icon), writes a note for the patient and a prescription, gets a field
error for a repeat prescription without renewals (focus on the error summary, nothing
saved), then ends with a summary. Each form posts with htmx and swaps only itself; the
context above reloads after each write. The patient then finds the summary and the note
under "My visits" and the prescription under "My prescriptions".

axe-core runs on every screen and on the error state; the `page` / `new_page` fixtures
fail on console errors and CSP violations.
"""

from __future__ import annotations

import re

from django.urls import reverse
from playwright.sync_api import Page, expect

from records.models import Prescription, Visit
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in, sign_in_staff
from tests.records.helpers import receive
from tests.telemedicine.test_consult import make_doctor, video_appointment


def test_doctor_consults_prescribes_and_releases_a_summary_the_patient_then_reads(
    live_server, page: Page, console, new_page
):
    patient = factories.make_patient(first_name="Vera", last_name="Orlova", language="en")
    doctor = make_doctor(full_name="Irina Sokolova")
    appointment = video_appointment(doctor, patient)  # booking grants care access
    receive(patient, "hba1c", ["8.9"], days_ago=3)  # high, waits for the doctor's review
    receive(patient, "glucose", ["5.0"], days_ago=20)  # normal, released

    sign_in_staff(page, doctor)
    page.goto(reverse("telemedicine:consult", args=[appointment.public_id]))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Consultation with")
    results = page.get_by_role("region", name="Results")
    flagged = results.get_by_role("row").filter(has_text="HbA1c")
    expect(flagged).to_contain_text("8.9")
    expect(flagged).to_contain_text("High")
    expect(flagged).to_contain_text("\u25b2")  # the icon beside the word
    expect(flagged).to_contain_text("Awaiting review")
    assert_accessible(page)

    this = page.get_by_role("region", name="This consultation")
    expect(this).to_contain_text("Nothing written yet")

    note = page.get_by_role("region", name="Write a note")
    note.get_by_label("Note", exact=True).fill("Measure your blood pressure every morning.")
    note.get_by_label("The patient too, once the summary is released").check()
    note.get_by_role("button", name="Save note").click()
    expect(note.get_by_role("status")).to_contain_text("Note saved.")
    expect(note.get_by_label("Note", exact=True)).to_have_value("")
    expect(this).to_contain_text("1 note")  # the context reloaded itself

    rx = page.get_by_role("region", name="Write a prescription")
    rx.get_by_label("Medication", exact=True).fill("Amlodipine")
    rx.get_by_label("Dosage", exact=True).fill("5 mg once a day")
    rx.get_by_label(re.compile(r"^Repeat prescription")).check()
    rx.get_by_role("button", name="Save the prescription").click()
    problem = rx.get_by_role("alert").filter(has_text="There is a problem")
    expect(problem).to_be_visible()
    expect(problem).to_be_focused()
    expect(rx.get_by_label(re.compile(r"^Renewals allowed"))).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(rx.get_by_label("Medication", exact=True)).to_have_value("Amlodipine")
    assert not Prescription.objects.exists()
    assert_accessible(page)

    rx.get_by_label(re.compile(r"^Renewals allowed")).fill("2")
    rx.get_by_role("button", name="Save the prescription").click()
    expect(rx.get_by_role("status")).to_contain_text("The prescription is saved")
    expect(page.get_by_role("region", name="Current prescriptions")).to_contain_text("Amlodipine")

    summary = page.get_by_role("region", name="Summary for the patient")
    summary.get_by_label("Summary for the patient").fill("Blood pressure is fine. Walk daily.")
    summary.get_by_role("button", name="Sign and release the summary").click()
    expect(summary.get_by_role("status")).to_contain_text("The summary is released")
    expect(this).to_contain_text("Summary released to the patient")
    assert_accessible(page)
    visit = Visit.objects.get(appointment=appointment)
    assert visit.released and visit.summary == "Blood pressure is fine. Walk daily."

    patient_page = new_page()
    sign_in(patient_page, patient.email)
    patient_page.goto(reverse("records:visits"))
    main = patient_page.locator("main")
    expect(main).to_contain_text("Blood pressure is fine. Walk daily.")
    expect(main).to_contain_text("Measure your blood pressure every morning.")
    assert_accessible(patient_page)
    patient_page.goto(reverse("records:care_prescriptions"))
    expect(patient_page.locator("main")).to_contain_text("Amlodipine")
    assert_accessible(patient_page)
    console.assert_clean()
