"""Browser journey of secure messaging (issue 8, "a chat thread goes from patient to
clinic and back"): a patient writes to the clinic about their appointment; reception
(signed in with TOTP) finds it in the message queue and answers; the patient's open
page shows the answer by itself (htmx polling, announced in a live region), and the
email telling them about it, on a real SMTP server, says nothing of the conversation.
An empty reply is refused with an error tied to the field.

axe-core runs on every screen; the `page` / `new_page` fixtures fail on console errors
and CSP violations.
"""

from __future__ import annotations

import re

from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.models import Role
from notifications import services as notification_services
from notifications.models import Event, Message
from telemedicine.models import Team, Thread, ThreadState
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in, sign_in_staff
from tests.scheduling.test_patient_booking import make_clinic

POLL_WAIT_MS = 25_000  # the page polls every 10 s


def _main_menu(page: Page):  # noqa: ANN202
    return page.get_by_role("navigation", name="Main menu")


def test_a_thread_goes_from_patient_to_clinic_and_back(
    live_server, page: Page, new_page, console, smtp_server, settings
):
    from scheduling import services as scheduling_services

    settings.SITE_URL = live_server.url
    clinic = make_clinic()
    patient = factories.make_patient(first_name="Vera", last_name="Orlova", language="en")
    reception = factories.make_staff(Role.RECEPTION, full_name="Rita Desk", language="en")
    slot = clinic.slots(days_ahead=2)[0]
    appointment = scheduling_services.appointment_book_slot(
        by=patient,
        patient=patient.patient_profile,
        doctor=clinic.doctor,
        consultation_type=clinic.ctype,
        starts_at=slot.start,
    )

    # The patient writes about their appointment.
    sign_in(page, patient.email)
    _main_menu(page).get_by_role("link", name="Messages with the clinic").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Messages with the clinic")
    expect(page.get_by_text("You have no messages yet.")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name="Write to the clinic").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Write to the clinic")
    assert_accessible(page)
    page.get_by_role("radio", name="An appointment").check()
    page.get_by_label("Which of your records is it about?").select_option(
        f"appointment:{appointment.public_id}"
    )
    page.get_by_label("Subject").fill("Running late")
    page.get_by_label("Your message").fill("I may be ten minutes late. Canary-Walrus.")
    page.get_by_role("button", name="Send the message").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Running late")
    expect(page.get_by_role("status").first).to_contain_text("Your message is sent.")
    expect(page.locator(".thread-state")).to_have_text("Sent: the clinic will answer")
    expect(page.get_by_text("Reception and your doctor")).to_be_visible()
    assert_accessible(page)
    thread = Thread.objects.get()
    assert (thread.team, thread.doctor) == (Team.RECEPTION, clinic.doctor)

    # An empty reply is refused, tied to its field.
    page.get_by_role("button", name="Send", exact=True).click()
    reply = page.get_by_label("Your reply")
    expect(reply).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert").first).to_contain_text("Write your message.")
    assert_accessible(page)
    assert thread.messages.count() == 1

    # Reception finds it in the queue and answers.
    staff = new_page()
    sign_in_staff(staff, reception)
    _main_menu(staff).get_by_role("link", name="Messages from patients").click()
    expect(staff.get_by_role("heading", level=1)).to_have_text("Messages from patients")
    row = staff.get_by_role("row").filter(has_text="Running late")
    expect(row).to_contain_text("Vera Orlova")
    expect(row).to_contain_text("New")
    expect(row).to_contain_text("Open")
    assert_accessible(staff)
    row.get_by_role("link", name="Running late").click()
    expect(staff.get_by_role("heading", level=1)).to_have_text("Running late")
    expect(staff.get_by_text("I may be ten minutes late.")).to_be_visible()
    assert_accessible(staff)
    staff.get_by_label("Your reply").fill("No problem, we will keep your slot. Canary-Narwhal.")
    staff.get_by_role("button", name="Send", exact=True).click()
    expect(staff.get_by_role("status").first).to_contain_text("Your message is sent.")
    expect(staff.locator(".thread-state")).to_have_text("Waiting for the patient")
    expect(staff.get_by_text("Taken by")).to_be_visible()
    assert_accessible(staff)

    # The patient's open page shows the answer by itself, and says so to screen readers.
    expect(page.get_by_text("No problem, we will keep your slot.")).to_be_visible(
        timeout=POLL_WAIT_MS
    )
    expect(page.locator("#thread-announce")).to_have_text("1 new message")
    expect(page.locator(".thread-state")).to_have_text("Waiting for your reply")
    expect(page.locator(".thread-message").last).to_contain_text("Rita Desk, Reception")
    assert_accessible(page)

    # And back to the clinic.
    page.get_by_label("Your reply").fill("Thank you!")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator(".thread-state")).to_have_text("Waiting for the clinic")
    expect(staff.get_by_text("Thank you!")).to_be_visible(timeout=POLL_WAIT_MS)
    thread.refresh_from_db()
    assert thread.state == ThreadState.WAITING_CLINIC
    assert [m.from_patient for m in thread.messages.all()] == [True, False, True]

    # The email about the answer: no subject, no text, no names — open the portal.
    (row_id,) = Message.objects.filter(
        user=patient, event=Event.NEW_MESSAGE, channel="email"
    ).values_list("pk", flat=True)
    notification_services.message_send(message_id=row_id)
    (received,) = smtp_server.wait_for(1)
    assert received.recipients == (patient.email,)
    for word in ("Running late", "Walrus", "Narwhal", "slot", "Rita", "Petrova", "Orlova"):
        assert word.lower() not in received.text.lower()
    assert re.search(r"new message", received.text, re.I)
    assert live_server.url in received.body

    # The inbox shows the conversation, read, with its state in words.
    page.goto(reverse("telemedicine:inbox"))
    inbox_row = page.get_by_role("row").filter(has_text="Running late")
    expect(inbox_row).to_contain_text("Waiting for the clinic")
    expect(inbox_row).not_to_contain_text("New")
    assert_accessible(page)
    console.assert_clean()
