"""Browser journeys of the security core: a patient sees who opened their record,
including a doctor's emergency (break-glass) access."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from accounts import services
from accounts.models import Role
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in, sign_in_staff


def _english(user):
    user.language = "en"
    user.save(update_fields=["language"])
    return user


def test_patient_sees_the_doctor_who_opened_their_record(live_server, page, new_page, console):
    patient = factories.make_patient(first_name="Lidia", last_name="Orlova")
    doctor = _english(factories.make_staff(Role.DOCTOR, full_name="Dr Anton Belov"))
    services.care_access_grant(
        by=None, doctor=doctor, patient=patient.patient_profile, reason="appointment"
    )

    desk = new_page()
    sign_in_staff(desk, doctor)
    desk.get_by_role("link", name="My patients").click()
    desk.get_by_role("link", name="Orlova Lidia").click()
    expect(desk.get_by_role("heading", level=1)).to_have_text("Orlova Lidia")
    assert_accessible(desk)

    sign_in(page, patient.email)
    page.get_by_role("link", name="Who opened my record").click()
    row = page.get_by_role("row").filter(has_text="Dr Anton Belov")
    expect(row.first).to_contain_text("your medical record")
    expect(row.first).to_contain_text("Doctor")
    assert_accessible(page)
    console.assert_clean()


def test_break_glass_is_visible_to_the_patient_and_the_admin(live_server, page, new_page, console):
    patient = factories.make_patient(
        first_name="Mira", last_name="Kovaleva", snils=factories.valid_snils()
    )
    doctor = _english(factories.make_staff(Role.DOCTOR, full_name="Dr Ivan Sokol"))
    doctor.staff_profile.department = None
    doctor.staff_profile.save()
    admin = _english(factories.make_staff(Role.ADMIN, full_name="Admin Olga"))
    reason = "Unconscious patient brought to the emergency room"

    desk = new_page()
    sign_in_staff(desk, doctor)
    desk.get_by_role("link", name="Patients", exact=True).click()
    desk.get_by_label("SNILS, passport or email").fill(patient.patient_profile.snils)
    desk.get_by_role("button", name="Find").click()
    expect(desk.get_by_text("not in your care")).to_be_visible()
    expect(desk.get_by_text("Kovaleva")).to_have_count(0)
    desk.get_by_role("link", name="Emergency access (break-glass)").click()
    assert_accessible(desk)
    desk.get_by_label("Why do you need this record now?").fill(reason)
    desk.get_by_role("button", name="Open the record").click()
    expect(desk.get_by_role("heading", level=1)).to_have_text("Kovaleva Mira")
    expect(desk.get_by_role("alert").first).to_contain_text("Emergency access")

    sign_in(page, patient.email)
    page.get_by_role("link", name="Who opened my record").click()
    expect(page.get_by_text(reason).first).to_be_visible()
    expect(page.get_by_text("Emergency access. Reason given:").first).to_be_visible()
    assert_accessible(page)

    review = new_page()
    sign_in_staff(review, admin)
    review.goto(f"{live_server.url}/admin/audit/auditevent/?break_glass__exact=1")
    expect(review.get_by_text(re.compile("break-glass", re.I)).first).to_be_visible()
    expect(review.locator("#result_list")).to_contain_text(str(patient.pk))
    console.assert_clean()
