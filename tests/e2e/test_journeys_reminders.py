"""Issue 5's "done when" in a browser: a patient receives a reminder email on a real SMTP
server (aiosmtpd on loopback), confirms from its link without signing in, and a second
click on the same link changes nothing. Then the appointment's page shows the delivery
state."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from audit.models import AuditEvent
from notifications import services
from notifications.models import Reminder, ReminderState
from scheduling.models import AppointmentEventKind, AppointmentStatus
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in
from tests.scheduling.test_patient_booking import make_clinic


def test_reminder_email_confirm_link_works_once(
    live_server, page: Page, console, smtp_server, settings
):
    settings.SITE_URL = live_server.url
    clinic = make_clinic()
    patient = factories.make_patient(first_name="Vera", language="en")
    slot = clinic.slots(days_ahead=2)[0]
    from scheduling import services as scheduling_services

    appointment = scheduling_services.appointment_book_slot(
        by=patient,
        patient=patient.patient_profile,
        doctor=clinic.doctor,
        consultation_type=clinic.ctype,
        starts_at=slot.start,
        patient_note="Knee pain",
    )
    reminder = Reminder.objects.get(appointment=appointment, kind="24h", channel="email")
    now = appointment.starts_at - timedelta(hours=23, minutes=59)
    assert services.reminder_send(reminder_id=reminder.pk, now=now) == ReminderState.SENT

    (received,) = smtp_server.wait_for(1)
    assert received.recipients == (patient.email,)
    assert "Knee pain" not in received.text and "General practitioner" not in received.text
    confirm = re.search(r"Confirm with one tap.*?\n(http\S+)", received.body, re.S).group(1)
    assert confirm.startswith(live_server.url + "/r/")

    page.goto(confirm)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your appointment")
    assert_accessible(page)
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED  # opening the link changes nothing
    page.get_by_role("button", name="Yes, I will come").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("your appointment is confirmed")
    assert_accessible(page)
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CONFIRMED
    changes = appointment.events.filter(kind=AppointmentEventKind.STATUS).count()
    audited = AuditEvent.objects.count()

    # The second click on the same link in the email.
    response = page.goto(confirm)
    assert response.status == 410
    expect(page.get_by_role("heading", level=1)).to_have_text("This link cannot be used")
    expect(page.get_by_role("alert")).to_contain_text("already been used. Nothing was changed.")
    assert_accessible(page)
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CONFIRMED
    assert appointment.events.filter(kind=AppointmentEventKind.STATUS).count() == changes
    assert AuditEvent.objects.count() == audited

    # The patient sees that the reminder went out.
    sign_in(page, patient.email)
    page.goto(f"{live_server.url}/appointments/{appointment.public_id}/")
    deliveries = page.get_by_role("region", name="Reminders and messages")
    row = deliveries.get_by_role("row").filter(has_text="Reminder 24 h before")
    expect(row).to_contain_text("Sent")
    assert_accessible(page)
    console.assert_clean(allow=("status of 410",))
