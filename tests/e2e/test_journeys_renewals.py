"""Browser journey of a prescription renewal (issue 6, "done when"): a patient asks to
renew a repeat medication, a doctor in charge (signed in with TOTP) takes it into review
and approves it from the renewal queue, and the patient sees each state — submitted,
under review, approved — with its history. A second journey: a rejection without a
reason is refused with an error tied to the field, then the patient reads the reason.

axe-core runs on every screen; the `page` / `new_page` fixtures fail on console errors
and CSP violations.
"""

from __future__ import annotations

import re

from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.models import Role
from records.models import RenewalRequest, RenewalStatus
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in, sign_in_staff
from tests.records.care_helpers import prescription


def _state(page: Page):  # noqa: ANN202
    return page.locator(".renewal-state")


def _patient_opens_request(page: Page, medication: str) -> None:
    page.get_by_role("navigation", name="Main menu").get_by_role(
        "link", name="Prescriptions and care"
    ).click()
    page.get_by_role("link", name="My renewal requests").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My renewal requests")
    page.get_by_role("link", name=re.compile(rf"^Details\s*: {medication}")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Renewal of {medication}")


def test_patient_requests_a_renewal_and_sees_it_reviewed_and_approved(
    live_server, page: Page, new_page, console
):
    patient = factories.make_patient(first_name="Vera", language="en")
    doctor = factories.make_staff(Role.DOCTOR, full_name="Olga Petrova", language="en")
    prescription(patient, doctor, medication="Lisinopril 10 mg", dosage="10 mg once a day")

    # The patient asks for a renewal.
    sign_in(page, patient.email)
    # The portal's home page links to the records pages once the lead wires them in;
    # from any records page the menu has "Prescriptions and care".
    page.goto(reverse("records:care_prescriptions"))
    expect(page.get_by_role("heading", level=1)).to_have_text("My prescriptions")
    expect(page.get_by_text("3 of 3 renewals left")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name=re.compile(r"^Request a renewal\s*: Lisinopril 10 mg")).click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Request a renewal")
    choice = page.get_by_role("radio", name=re.compile("^Lisinopril 10 mg"))
    expect(choice).to_be_checked()
    expect(page.get_by_label("The dosage you take")).to_have_value("10 mg once a day")
    assert_accessible(page)
    page.get_by_label("Pharmacy").fill("Rigla pharmacy, Sadovaya 5")
    page.get_by_label("Notes for the doctor").fill("No side effects.")
    page.get_by_role("button", name="Send the request").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Renewal of Lisinopril 10 mg")
    expect(page.get_by_role("status").first).to_contain_text("Your renewal request is sent.")
    expect(_state(page)).to_contain_text("Submitted")
    expect(page.get_by_text("A doctor will look at it.")).to_be_visible()
    assert_accessible(page)
    renewal = RenewalRequest.objects.get()
    assert renewal.status == RenewalStatus.SUBMITTED

    # The doctor finds it in the queue and takes it into review.
    staff = new_page()
    sign_in_staff(staff, doctor)
    staff.goto(reverse("records:care_renewal_queue"))
    expect(staff.get_by_role("heading", level=1)).to_have_text("Renewal requests")
    waiting = staff.get_by_role("region", name="Waiting for a decision")
    expect(waiting).to_contain_text("Lisinopril 10 mg")
    expect(waiting).to_contain_text("Rigla pharmacy, Sadovaya 5")
    waiting.locator("summary").first.click()  # the medication history
    expect(waiting.get_by_role("table")).to_contain_text("Lisinopril 10 mg")
    assert_accessible(staff)
    waiting.get_by_role("link", name=re.compile("^Open the request")).click()
    expect(staff.get_by_role("heading", level=1)).to_contain_text("Renewal of Lisinopril 10 mg")
    assert_accessible(staff)
    staff.get_by_role("button", name="Start review").click()
    expect(staff.get_by_role("status").first).to_contain_text("The request is under review.")
    expect(_state(staff)).to_contain_text("Under review")

    # The patient sees it under review.
    page.reload()
    expect(_state(page)).to_contain_text("Under review")
    expect(page.get_by_text("A doctor is reviewing your request.")).to_be_visible()
    assert_accessible(page)

    # The doctor approves.
    staff.get_by_role("button", name="Approve renewal").click()
    expect(staff.get_by_role("status").first).to_contain_text("The renewal is approved.")
    expect(_state(staff)).to_contain_text("Approved")
    expect(staff.get_by_role("button", name="Mark as sent to the pharmacy")).to_be_visible()
    assert_accessible(staff)

    # The patient sees it approved, and the whole history.
    _patient_opens_request(page, "Lisinopril 10 mg")
    expect(_state(page)).to_contain_text("Approved")
    history = page.get_by_role("table", name=re.compile("History of this request"))
    rows = history.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Submitted")
    expect(rows.nth(0)).to_contain_text("You")
    expect(rows.nth(1)).to_contain_text("Under review")
    expect(rows.nth(2)).to_contain_text("Approved")
    expect(rows.nth(2)).to_contain_text("Olga Petrova")
    assert_accessible(page)
    renewal.refresh_from_db()
    assert renewal.status == RenewalStatus.APPROVED
    console.assert_clean()


def test_rejection_needs_a_reason_that_the_patient_then_reads(
    live_server, page: Page, new_page, console
):
    from records import services_care

    patient = factories.make_patient(first_name="Ivan", language="en")
    doctor = factories.make_staff(Role.DOCTOR, full_name="Olga Petrova", language="en")
    rx = prescription(patient, doctor, medication="Metformin 500 mg")
    renewal = services_care.renewal_request_submit(
        by=patient, prescription=rx, confirmed_dosage="500 mg twice a day", pharmacy="Rigla"
    )
    services_care.renewal_request_start_review(by=doctor, renewal=renewal)

    staff = new_page()
    sign_in_staff(staff, doctor)
    staff.goto(reverse("records:care_staff_renewal", args=[renewal.public_id]))
    staff.get_by_role("button", name="Reject the request").click()
    reason = staff.get_by_label("Reason for the patient")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(staff.get_by_role("alert").first).to_contain_text(
        "Tell the patient why the request is rejected."
    )
    assert_accessible(staff)
    reason.fill("Your HbA1c is due: please book a visit first.")
    staff.get_by_role("button", name="Reject the request").click()
    expect(_state(staff)).to_contain_text("Rejected")

    sign_in(page, patient.email)
    page.goto(reverse("records:care_prescriptions"))
    _patient_opens_request(page, "Metformin 500 mg")
    expect(_state(page)).to_contain_text("Rejected")
    expect(page.get_by_role("note")).to_contain_text(
        "Your HbA1c is due: please book a visit first."
    )
    assert_accessible(page)
    console.assert_clean()
