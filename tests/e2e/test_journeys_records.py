"""Browser journeys through lab results (issue 6, "done when"): a patient sees a
released report with flags (words and icons, not colour alone) and a trend chart, and
cannot open an unreleased one (the 404 page); a doctor reviews and releases a result and
the patient then sees it with the doctor's comment.

axe-core runs on every screen; the `page` / `new_page` fixtures fail on console errors
and CSP violations (the deliberate 404 is allowed by URL).
"""

from __future__ import annotations

import re

from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.models import Role
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in, sign_in_staff
from tests.records.helpers import grant, receive

GLUCOSE_NAME = "Fasting glucose [Moles/volume] in Serum or Plasma"


def _main_nav(page: Page):  # noqa: ANN202
    return page.get_by_role("navigation", name="Main menu")


def test_patient_sees_flags_and_a_trend_but_not_an_unreleased_report(
    live_server, page: Page, console
):
    patient = factories.make_patient(first_name="Vera", language="en")
    receive(patient, "glucose", ["7.9"], days_ago=200)
    receive(patient, "glucose", ["5.6"], days_ago=100)
    latest = receive(patient, "glucose", ["2.9"], days_ago=2)  # below the range
    unreleased = receive(patient, "hba1c", ["6.9"])  # waits for a doctor's review

    sign_in(page, patient.email)
    page.goto(reverse("records:results"))
    expect(page.get_by_role("heading", level=1)).to_have_text("My results")
    expect(page.get_by_text("Glycated haemoglobin")).to_have_count(0)
    assert_accessible(page)

    page.get_by_role("link", name=re.compile(r"^Fasting glucose")).first.click()
    expect(page).to_have_url(re.compile(str(latest.public_id)))
    expect(page.get_by_role("heading", level=1)).to_have_text("Fasting glucose")
    row = page.get_by_role("row", name=re.compile("^Fasting glucose"))
    expect(row.get_by_role("cell").nth(0)).to_have_text("2.9")
    expect(row).to_contain_text("mmol/L")
    expect(row).to_contain_text("3.9\u20136.1")
    # The flag in words, with its icon beside it (hidden from screen readers).
    flag = row.locator(".result-flag")
    expect(flag).to_have_text(re.compile(r"Low$"))
    expect(flag.locator(".result-flag__icon")).to_have_attribute("aria-hidden", "true")
    assert_accessible(page)

    row.get_by_role("link", name=re.compile("^Trend")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Trend: {GLUCOSE_NAME}")
    chart = page.get_by_role("img", name=f"Trend of {GLUCOSE_NAME}")
    expect(chart).to_be_visible()
    expect(chart.locator(".trend-band")).to_have_count(1)
    expect(chart.locator("polygon.trend-point--out")).to_have_count(2)  # 7.9 high, 2.9 low
    table = page.get_by_role("table", name=re.compile("All values of"))
    expect(table.get_by_role("row")).to_have_count(4)  # a header and three values
    expect(table).to_contain_text("High")
    assert_accessible(page)

    hidden_url = reverse("records:result_detail", args=[unreleased.public_id])
    response = page.goto(hidden_url)
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.get_by_text("Glycated")).to_have_count(0)
    assert_accessible(page)
    console.assert_clean(allow=(hidden_url,))
    console.clear()


def test_doctor_reviews_and_releases_and_the_patient_then_sees_it(
    live_server, page: Page, console, new_page
):
    patient = factories.make_patient(first_name="Oleg", language="en")
    doctor = factories.make_staff(Role.DOCTOR, full_name="Irina Sokolova", language="en")
    doctor.staff_profile.department = None
    doctor.staff_profile.save()
    grant(doctor, patient)
    report = receive(patient, "hba1c", ["7.1"])

    sign_in_staff(page, doctor)
    page.goto(reverse("records:review_queue"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Results to review")
    assert_accessible(page)
    page.get_by_role("link", name=re.compile(r"^Review")).click()
    expect(page).to_have_url(re.compile(str(report.public_id)))
    expect(page.get_by_text("Awaiting review")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Hemoglobin A1c"))).to_contain_text("High")
    assert_accessible(page)

    # A release without a comment is refused with a field error, and nothing changes.
    page.get_by_role("button", name="Save and release to the patient").click()
    expect(page.get_by_role("alert")).to_contain_text("Write a comment for the patient.")
    assert_accessible(page)
    console.assert_clean(allow=(str(report.public_id),))
    console.clear()

    page.get_by_label("Comment for the patient").fill(
        "Slightly above the target. Let's repeat it in three months."
    )
    page.get_by_role("button", name="Save and release to the patient").click()
    expect(page.get_by_role("status")).to_contain_text("released to the patient")
    expect(page.get_by_text("Released to the patient").first).to_be_visible()
    assert_accessible(page)

    patient_page = new_page()
    sign_in(patient_page, patient.email)
    patient_page.goto(reverse("records:results"))
    patient_page.get_by_role("link", name=re.compile(r"^Glycated haemoglobin")).click()
    expect(patient_page.get_by_role("heading", name="Your doctor's comment")).to_be_visible()
    expect(
        patient_page.get_by_text("Slightly above the target. Let's repeat it in three months.")
    ).to_be_visible()
    expect(patient_page.get_by_text("Irina Sokolova")).to_be_visible()
    assert_accessible(patient_page)
