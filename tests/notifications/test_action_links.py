"""Action links in reminders, attacked: reused, tampered, expired, moved, someone else's.
Each failure is a clear page and changes nothing."""

from __future__ import annotations

import re
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from notifications import services
from notifications.models import ActionLink, Reminder, ReminderState
from scheduling import services as scheduling_services
from scheduling.models import AppointmentStatus
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(client):
    """A visitor whose browser asks for English (pages of unknown links follow it)."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def _remind(appointment) -> dict[str, str]:
    """Send the 24 h reminder and return its links by action (as paths)."""
    row = Reminder.objects.get(appointment=appointment, kind="24h", channel="email")
    now = appointment.starts_at - timedelta(hours=23)
    assert services.reminder_send(reminder_id=row.pk, now=now) == ReminderState.SENT
    body = mail.outbox[-1].body
    urls = re.findall(r"http://127\.0\.0\.1:8000(/r/[^\s]+/)", body)
    assert len(urls) == 3
    found = {}
    for path in urls:
        token = path.split("/")[2]
        raw = token.split(".")[0]
        assert raw not in "".join(ActionLink.objects.values_list("token_hash", flat=True))
        link = services.action_link_resolve(token)
        found[link.action] = path
    return found


def _status(appointment) -> str:
    appointment.refresh_from_db()
    return appointment.status


def test_confirm_works_without_sign_in_and_a_second_click_changes_nothing(book, client):
    appointment = book()
    links = _remind(appointment)
    page = client.get(links["confirm"])
    assert page.status_code == 200 and "Yes, I will come" in page.content.decode()
    assert page["Referrer-Policy"] == "same-origin"
    assert _status(appointment) == AppointmentStatus.BOOKED  # looking changes nothing
    done = client.post(links["confirm"])
    assert done.status_code == 200 and "is confirmed" in done.content.decode()
    assert _status(appointment) == AppointmentStatus.CONFIRMED
    events = AuditEvent.objects.filter(object_type="notifications.actionlink").count()
    again = client.post(links["confirm"])
    assert again.status_code == 410 and "already been used" in again.content.decode()
    assert client.get(links["confirm"]).status_code == 410
    assert AuditEvent.objects.filter(object_type="notifications.actionlink").count() == events
    assert appointment.events.filter(to_status=AppointmentStatus.CONFIRMED).count() == 1


def test_a_tampered_or_made_up_link_is_refused(book, client):
    appointment = book()
    links = _remind(appointment)
    path = links["confirm"]
    token = path.split("/")[2]
    raw, stamp, signature = token.split(".")
    flipped = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    for forged in (
        f"/r/{flipped}.{stamp}.{signature}/",
        f"/r/{raw}.{stamp}.{signature[:-2]}xx/",
        f"/r/{raw}/",
        "/r/nothing/",
    ):
        page = client.post(forged)
        assert page.status_code == 404 and "not valid" in page.content.decode()
    # A correctly signed token of a link that does not exist (never issued).
    unknown = services._signer().sign("never-issued")  # noqa: SLF001
    assert client.post(f"/r/{unknown}/").status_code == 404
    # Using the confirm token for a cancel changes nothing either.
    assert _status(appointment) == AppointmentStatus.BOOKED


def test_an_expired_signature_is_refused(book, client):
    appointment = book()
    links = _remind(appointment)
    later = timezone.now() + services.LINK_MAX_AGE + timedelta(minutes=1)
    with mock.patch("django.core.signing.time.time", return_value=later.timestamp()):
        page = client.post(links["confirm"])
    assert page.status_code == 410 and "expired" in page.content.decode()
    assert _status(appointment) == AppointmentStatus.BOOKED


def test_links_of_a_moved_or_started_appointment_are_closed(book, client):
    appointment = book()
    links = _remind(appointment)
    scheduling_services.appointment_reschedule(
        by=None, appointment=appointment, new_start=appointment.starts_at + timedelta(hours=1)
    )
    page = client.post(links["confirm"])
    assert page.status_code == 410
    assert _status(appointment) == AppointmentStatus.BOOKED
    other = book(patient=factories.make_patient())
    other_links = _remind(other)
    ActionLink.objects.filter(appointment=other).update(expires_at=timezone.now())
    assert client.post(other_links["cancel"]).status_code == 410
    assert _status(other) == AppointmentStatus.BOOKED


def test_cancel_shows_the_policy_asks_again_and_closes_the_other_links(book, client):
    appointment = book(ctype_fields={"free_cancellation_hours": 72, "late_cancellation_fee": 500})
    links = _remind(appointment)
    page = client.get(links["cancel"])
    html = page.content.decode()
    assert "fee of 500" in html and "Yes, cancel the appointment" in html
    assert _status(appointment) == AppointmentStatus.BOOKED
    done = client.post(links["cancel"])
    assert done.status_code == 200 and "is cancelled" in done.content.decode()
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED and appointment.cancellation_fee == 500
    assert client.post(links["confirm"]).status_code == 410
    assert client.post(links["cancel"]).status_code == 410
    assert Reminder.objects.filter(appointment=appointment, state=ReminderState.REVOKED).exists()


def test_cancel_refused_by_policy_changes_nothing_and_keeps_the_link(book, client):
    appointment = book(
        ctype_fields={"free_cancellation_hours": 72, "late_cancellation": "not_online"}
    )
    links = _remind(appointment)
    page = client.get(links["cancel"])
    assert "Please call the clinic" in page.content.decode()
    refused = client.post(links["cancel"])
    assert refused.status_code == 409 and "Nothing was changed" in refused.content.decode()
    assert _status(appointment) == AppointmentStatus.BOOKED
    assert ActionLink.objects.filter(appointment=appointment, used_at__isnull=True).count() == 3


def test_reschedule_needs_the_patients_own_sign_in(book, client):
    patient = factories.make_patient()
    appointment = book(patient=patient)
    links = _remind(appointment)
    page = client.get(links["reschedule"])
    assert page.status_code == 302 and page["Location"].startswith(reverse("account_login"))
    intruder = factories.make_patient()
    client.force_login(intruder)
    page = client.get(links["reschedule"])
    assert page.status_code == 404 and "another patient" in page.content.decode()
    assert ActionLink.objects.get(appointment=appointment, action="reschedule").used_at is None
    client.force_login(patient)
    page = client.get(links["reschedule"])
    assert page.status_code == 302
    assert page["Location"] == reverse(
        "scheduling:appointment_reschedule", args=[appointment.public_id]
    )
    assert client.get(links["reschedule"]).status_code == 410


def test_two_clicks_at_once_confirm_once(book):
    appointment = book()
    links = _remind(appointment)
    token = links["confirm"].split("/")[2]
    services.action_link_confirm(token=token)
    with pytest.raises(services.LinkProblem) as problem:
        services.action_link_confirm(token=token)
    assert problem.value.reason == "used"
