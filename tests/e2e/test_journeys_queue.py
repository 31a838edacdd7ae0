"""Browser journeys of the live queue: reception issues a ticket linked by SNILS and
calls patients in; the patient's page follows along without a reload (htmx polling);
the waiting-room display shows numbers only."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from accounts.models import Role
from scheduling import queue
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in, sign_in_staff

# The patient's page polls every 10 s; leave room for one missed beat.
LIVE_TIMEOUT_MS = 25_000
# The patient's header (navigation owned by accounts and booking) is checked by their
# journeys; here axe checks what this page adds.
PATIENT_CONTENT = "main"


def _english(user):
    user.language = "en"
    user.save(update_fields=["language"])
    return user


def test_patient_follows_the_queue_live_while_reception_calls(live_server, page, new_page, console):
    location = factories.make_location(code="main")
    doctor = _english(factories.make_staff(Role.DOCTOR, full_name="Dr Vera Lind"))
    factories.make_working_week(doctor, location)
    desk_user = _english(factories.make_staff(Role.RECEPTION, full_name="Desk Nina"))
    snils = factories.valid_snils()
    patient = factories.make_patient(first_name="Oksana", last_name="Zaretskaya", snils=snils)
    first = queue.queue_ticket_issue(by=desk_user, location=location, doctor=doctor)
    queue.queue_start(by=desk_user, ticket=queue.queue_call(by=desk_user, ticket=first))
    second = queue.queue_ticket_issue(by=desk_user, location=location, doctor=doctor)

    # Reception gives the patient a ticket, found by SNILS.
    desk = new_page()
    sign_in_staff(desk, desk_user)
    desk.goto(f"/staff/queue/{location.code}/")
    expect(desk.get_by_role("heading", level=1)).to_have_text("Queue: Clinic main")
    assert_accessible(desk)
    desk.get_by_label("Doctor").select_option(label="Dr Vera Lind")
    desk.get_by_label("Patient's SNILS").fill(snils)
    desk.get_by_role("button", name="Issue a ticket").click()
    expect(desk.locator("#messages")).to_contain_text("Ticket number 3 issued.")
    expect(desk.get_by_role("row").filter(has_text="Zaretskaya Oksana")).to_contain_text("Waiting")
    assert_accessible(desk)

    # The patient sees their place.
    sign_in(page, patient.email)
    page.goto("/queue/me/")
    status = page.locator("[data-queue-summary]")
    expect(status).to_have_text(f"Live queue: now seeing {first.number} of 3, about 30 min")
    expect(page.get_by_text("2 patients before you")).to_be_visible()
    assert_accessible(page, PATIENT_CONTENT)
    page.evaluate("() => { window.__notReloaded = true; }")

    # Reception finishes the first and calls the second: the patient's page follows.
    desk.get_by_role("button", name=f"Done — ticket {first.number}", exact=True).click()
    expect(desk.locator("#messages")).to_contain_text(f"Ticket number {first.number}: Done.")
    desk.get_by_role("button", name=f"Call — ticket {second.number}", exact=True).click()
    expect(desk.locator("#messages")).to_contain_text(f"Ticket number {second.number}: Called.")
    expect(status).to_have_text(
        f"Live queue: now seeing {second.number} of 3, about 15 min", timeout=LIVE_TIMEOUT_MS
    )
    assert page.evaluate("() => window.__notReloaded") is True

    # Then the patient's own turn.
    desk.get_by_role("button", name="Call — ticket 3", exact=True).click()
    expect(status).to_contain_text("it is your turn, number 3", timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("() => window.__notReloaded") is True
    assert_accessible(page, PATIENT_CONTENT)

    # The waiting-room screen: numbers, no names, no sign-in.
    screen = new_page()
    screen.goto(f"/display/{location.code}/")
    expect(screen).to_have_url(re.compile(rf"/display/{location.code}/$"))
    called = screen.locator("[data-board=called]")
    expect(called).to_contain_text("3")
    expect(called).to_contain_text(str(second.number))
    body = screen.locator("main").inner_text()
    for secret in ("Zaretskaya", "Oksana", "Vera Lind", "Lind"):
        assert secret not in body
    assert_accessible(screen)
    console.assert_clean()
