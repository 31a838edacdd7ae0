"""Browser journey through the patient's data rights (issue 6, item 9): a patient
downloads everything held about them as a FHIR Bundle, deletes their account with their
password and a confirmation, reads on the outcome page what was removed and what the
clinic keeps for the legal retention and why, and cannot sign in again.

axe-core runs on every screen; the `page` fixture fails on console errors and CSP
violations.
"""

from __future__ import annotations

import json
import re

from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.models import User
from records.models import MEDICAL_RECORD_RETENTION_YEARS
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in
from tests.records.helpers import receive


def test_patient_downloads_their_data_then_deletes_the_account(
    live_server, page: Page, console, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path
    patient = factories.make_patient(first_name="Nina", language="en", phone="+7 903 111-22-33")
    receive(patient, "glucose", ["5.2"], days_ago=3)
    email = patient.email

    sign_in(page, email)
    page.goto(reverse("records:data_rights"))
    expect(page.get_by_role("heading", level=1)).to_have_text("My data")
    expect(page.get_by_text(f"{MEDICAL_RECORD_RETENTION_YEARS} years").first).to_be_visible()
    assert_accessible(page)

    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download as FHIR (JSON)").click()
    download = downloading.value
    assert download.suggested_filename.startswith("fhir-export-")
    bundle = json.loads(download.path().read_text(encoding="utf-8"))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    kinds = {entry["resource"]["resourceType"] for entry in bundle["entry"]}
    assert {"Patient", "DiagnosticReport", "Observation"} <= kinds

    page.reload()
    history = page.get_by_role("table", name=re.compile("Your requests about your data"))
    expect(history).to_contain_text("Download of your data (FHIR, JSON)")
    page.get_by_role("link", name="Delete my account…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete your account")
    expect(page.get_by_text("Why the medical record is kept")).to_be_visible()
    assert_accessible(page)

    page.get_by_label("Your password").fill(factories.PASSWORD)
    page.get_by_label("Yes, delete my account").check()
    page.get_by_role("button", name="Delete my account").click()

    expect(page).to_have_url(re.compile(r"/records/my-data/deleted/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account is deleted")
    main = page.locator("main")
    expect(main).to_contain_text("You have been signed out")
    expect(main).to_contain_text(f"for {MEDICAL_RECORD_RETENTION_YEARS} years")
    expect(main).to_contain_text("323-FZ")
    expect(page.get_by_role("heading", name="What is kept, and why")).to_be_visible()
    expect(page.get_by_role("banner").get_by_role("button", name="Sign out")).to_have_count(0)
    assert_accessible(page)

    # Signed out for good: the old address and password no longer open the portal.
    sign_in(page, email)
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the patient portal")
    page.goto(reverse("records:data_rights"))
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    assert_accessible(page)
    assert not User.objects.get(pk=patient.pk).is_active
    console.assert_clean()
