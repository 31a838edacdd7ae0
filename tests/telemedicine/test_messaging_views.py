"""Secure messaging pages: the patient's inbox, new thread, thread, reply, poll, close
and reopen; the staff queue and actions; attachment downloads. What each page shows, what
it refuses (with a clear message, changing nothing), and that it reads a fixed number of
queries however many threads there are."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from telemedicine import services_messaging as services
from telemedicine.models import AboutKind, MessageAttachment, Team, Thread, ThreadState, Topic
from tests import factories
from tests.telemedicine.test_messaging import book, make_world, png_bytes, png_upload, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return make_world()


@pytest.fixture(autouse=True)
def _english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


def _text(response) -> str:  # noqa: ANN001
    return response.content.decode()


# --- Patient -----------------------------------------------------------------------------------


def test_inbox_lists_only_own_threads_with_unread_markers(client, world):
    mine = start(world.patient, subject="Invoice question")
    start(world.stranger, subject="Someone else's secret")
    services.thread_reply(by=world.reception, thread=mine, body="Refunded.")
    client.force_login(world.patient)
    response = client.get(reverse("telemedicine:inbox"))
    html = _text(response)
    assert response.status_code == 200
    assert "Invoice question" in html and "secret" not in html
    assert "1 conversation has a new message." in html
    assert re.search(r'thread-new">New<', html)
    assert re.search(r"Waiting for your reply", html)  # the state in words
    assert AuditEvent.objects.filter(
        actor=world.patient, action=AuditAction.VIEW, patient=world.patient
    ).exists()


def test_staff_have_no_inbox_and_patients_no_queue(client, world):
    client.force_login(world.reception)
    assert client.get(reverse("telemedicine:inbox")).status_code == 404
    assert client.get(reverse("telemedicine:thread_new")).status_code == 404
    client.force_login(world.patient)
    assert client.get(reverse("telemedicine:queue")).status_code == 404


def test_new_thread_form_offers_own_records_and_preselects_from_the_link(client, world):
    theirs = book(world.stranger, world.other_doctor, days=3)
    client.force_login(world.patient)
    url = reverse("telemedicine:thread_new")
    response = client.get(f"{url}?topic=appointment&about={world.appointment.public_id}")
    html = _text(response)
    assert response.status_code == 200
    assert re.search(r'value="appointment"[^>]*checked', html)
    assert re.search(
        rf'<option value="appointment:{world.appointment.public_id}"[^>]*selected', html
    )
    assert f"appointment:{theirs.public_id}" not in html
    # Someone else's appointment in the link is neither offered nor preselected.
    response = client.get(f"{url}?topic=appointment&about={theirs.public_id}")
    assert f"appointment:{theirs.public_id}" not in _text(response)
    assert '<option value="" selected>' in _text(response)


def test_patient_writes_and_is_taken_to_the_thread(client, world):
    client.force_login(world.patient)
    response = client.post(
        reverse("telemedicine:thread_new"),
        {
            "topic": Topic.APPOINTMENT,
            "about": f"appointment:{world.appointment.public_id}",
            "subject": "Running late",
            "body": "I may be ten minutes late.",
            "file": png_upload(),
        },
    )
    thread = Thread.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("telemedicine:thread", args=[thread.public_id])
    assert (thread.team, thread.doctor, thread.about_kind) == (
        Team.RECEPTION,
        world.doctor,
        AboutKind.APPOINTMENT,
    )
    page = client.get(response["Location"])
    html = _text(page)
    assert "Running late" in html and "I may be ten minutes late." in html
    assert "Your message is sent." in html
    assert "Attached PNG file" in html
    assert 'aria-live="polite"' in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"subject": "Hi", "body": "   "}, "Write your message."),
        ({"subject": "", "body": "Hello"}, "Give your message a subject."),
        ({"subject": "Hi", "body": "x" * 5001}, "The message is too long"),
    ],
)
def test_bad_input_shows_a_clear_message_and_sends_nothing(client, world, data, message):
    client.force_login(world.patient)
    response = client.post(reverse("telemedicine:thread_new"), {"topic": "billing", **data})
    assert response.status_code == 400
    assert message in _text(response)
    assert 'aria-invalid="true"' in _text(response)
    assert not Thread.objects.exists()


def test_another_patients_record_posted_in_the_form_is_refused(client, world):
    theirs = book(world.stranger, world.other_doctor, days=3)
    client.force_login(world.patient)
    response = client.post(
        reverse("telemedicine:thread_new"),
        {
            "topic": Topic.APPOINTMENT,
            "about": f"appointment:{theirs.public_id}",
            "subject": "Hi",
            "body": "Hello",
        },
    )
    assert response.status_code == 400
    assert "Choose one of your own records from the list." in _text(response)
    assert not Thread.objects.exists()


def test_a_file_too_large_is_stopped_while_uploading(client, world, monkeypatch):
    monkeypatch.setattr(services, "ATTACHMENT_MAX_BYTES", 1024)
    thread = start(world.patient)
    client.force_login(world.patient)
    big = SimpleUploadedFile("big.png", png_bytes((400, 400)) + b"\0" * 4096)
    response = client.post(
        reverse("telemedicine:thread_reply", args=[thread.public_id]),
        {"body": "See attached", "file": big},
    )
    assert response.status_code == 400
    assert "The file is too large: the limit is 0 MB." in _text(response)
    assert thread.messages.count() == 1 and not MessageAttachment.objects.exists()


def test_a_file_of_the_wrong_type_is_refused_with_the_reason(client, world):
    thread = start(world.patient)
    client.force_login(world.patient)
    response = client.post(
        reverse("telemedicine:thread_reply", args=[thread.public_id]),
        {"body": "See attached", "file": SimpleUploadedFile("x.pdf", b"MZ\x90\x00 not a pdf")},
    )
    assert response.status_code == 400
    assert "This type of file is not accepted" in _text(response)
    assert thread.messages.count() == 1


def test_patient_reply_close_and_reopen(client, world):
    thread = start(world.patient)
    services.thread_reply(by=world.reception, thread=thread, body="Which visit?")
    client.force_login(world.patient)
    url = reverse("telemedicine:thread_reply", args=[thread.public_id])
    assert client.post(url, {"body": "The one on Monday."}).status_code == 302
    thread.refresh_from_db()
    assert thread.state == ThreadState.WAITING_CLINIC
    client.post(reverse("telemedicine:thread_close", args=[thread.public_id]))
    thread.refresh_from_db()
    assert thread.state == ThreadState.CLOSED
    page = client.get(reverse("telemedicine:thread", args=[thread.public_id]))
    assert "This conversation is closed" in _text(page)
    assert 'name="body"' not in _text(page)  # no reply form
    response = client.post(url, {"body": "Still there?"}, follow=True)
    assert "This conversation is closed. Reopen it to write again." in _text(response)
    client.post(reverse("telemedicine:thread_reopen", args=[thread.public_id]))
    thread.refresh_from_db()
    assert thread.state == ThreadState.OPEN


def test_patients_cannot_use_staff_actions(client, world):
    thread = start(world.patient)
    client.force_login(world.patient)
    for name, data in (
        ("telemedicine:thread_take", {"action": "take"}),
        ("telemedicine:thread_state", {"state": "closed"}),
        ("telemedicine:thread_route", {"team": "care"}),
    ):
        response = client.post(reverse(name, args=[thread.public_id]), data)
        assert response.status_code == 404
    thread.refresh_from_db()
    assert (thread.state, thread.team, thread.assigned_to) == (
        ThreadState.OPEN,
        Team.RECEPTION,
        None,
    )


def test_someone_elses_thread_and_its_file_are_recorded_404s(client, world):
    theirs = start(world.stranger, upload=png_upload())
    attachment = MessageAttachment.objects.get()
    client.force_login(world.patient)
    for url in (
        reverse("telemedicine:thread", args=[theirs.public_id]),
        reverse("telemedicine:thread_poll", args=[theirs.public_id]),
        reverse("telemedicine:attachment", args=[attachment.public_id]),
    ):
        response = client.get(url)
        assert response.status_code == 404
        assert "Chuzhoy" not in _text(response)
    response = client.post(
        reverse("telemedicine:thread_reply", args=[theirs.public_id]), {"body": "Hi"}
    )
    assert response.status_code == 404
    assert theirs.messages.count() == 1
    denials = AuditEvent.objects.filter(actor=world.patient, action=AuditAction.DENIED)
    assert denials.filter(patient=world.stranger).count() == 4


def test_poll_answers_204_until_something_changes(client, world):
    thread = start(world.patient)
    client.force_login(world.patient)
    page = _text(client.get(reverse("telemedicine:thread", args=[thread.public_id])))
    poll = re.search(r'hx-get="([^"]+/poll/\?v=\d+)"', page).group(1)
    assert client.get(poll).status_code == 204
    services.thread_reply(by=world.reception, thread=thread, body="Refunded today.")
    response = client.get(poll)
    html = _text(response)
    assert response.status_code == 200
    assert "Refunded today." in html
    assert 'hx-swap-oob="innerHTML">1 new message<' in html
    new_poll = re.search(r'hx-get="([^"]+/poll/\?v=\d+)"', html).group(1)
    assert new_poll != poll and client.get(new_poll).status_code == 204
    # What the poll showed counts as read.
    assert client.get(reverse("telemedicine:inbox")).content.decode().count(">New<") == 0


def test_attachment_download_has_safe_headers(client, world):
    start(world.patient, upload=png_upload("Orlova_rash.png"))
    attachment = MessageAttachment.objects.get()
    client.force_login(world.reception)
    response = client.get(reverse("telemedicine:attachment", args=[attachment.public_id]))
    assert response.status_code == 200
    assert response.content == png_bytes()
    assert response["Content-Type"] == "image/png"
    assert "Orlova" not in response["Content-Disposition"]
    assert response["Content-Disposition"].startswith('attachment; filename="attachment-')
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"


# --- Staff -------------------------------------------------------------------------------------


def test_queue_shows_what_is_routed_to_each_role(client, world):
    start(world.patient, subject="Billing question")
    care = start(world.patient, Topic.OTHER, subject="Diet question", body="What can I eat?")
    services.thread_route(by=world.reception, thread=care, team=Team.CARE)
    start(world.stranger, subject="Stranger billing")
    client.force_login(world.reception)
    html = _text(client.get(reverse("telemedicine:queue")))
    assert "Billing question" in html and "Stranger billing" in html
    assert "Diet question" not in html
    client.force_login(world.nurse)
    html = _text(client.get(reverse("telemedicine:queue")))
    assert "Diet question" in html and "Billing question" not in html
    client.force_login(world.other_nurse)
    html = _text(client.get(reverse("telemedicine:queue")))
    assert "Diet question" not in html
    admin = factories.make_staff(Role.ADMIN)
    client.force_login(admin)
    assert client.get(reverse("telemedicine:queue")).status_code == 404


def test_staff_reply_take_state_and_route_from_the_thread_page(client, world):
    thread = start(world.patient, Topic.OTHER, subject="Diet", body="What can I eat?")
    client.force_login(world.reception)
    page = client.get(reverse("telemedicine:thread", args=[thread.public_id]))
    html = _text(page)
    assert "Vera Orlova" in html and "What can I eat?" in html
    assert AuditEvent.objects.filter(
        actor=world.reception, action=AuditAction.VIEW, patient=world.patient
    ).exists()
    client.post(reverse("telemedicine:thread_take", args=[thread.public_id]), {"action": "take"})
    thread.refresh_from_db()
    assert thread.assigned_to == world.reception
    client.post(
        reverse("telemedicine:thread_reply", args=[thread.public_id]),
        {"body": "A doctor will answer."},
    )
    response = client.post(
        reverse("telemedicine:thread_state", args=[thread.public_id]), {"state": "open"}
    )
    assert response.status_code == 302  # not allowed from "waiting for the patient"
    thread.refresh_from_db()
    assert thread.state == ThreadState.WAITING_PATIENT
    response = client.post(
        reverse("telemedicine:thread_route", args=[thread.public_id]), {"team": "care"}
    )
    assert response["Location"] == reverse("telemedicine:queue")  # no longer theirs
    thread.refresh_from_db()
    assert thread.team == Team.CARE
    assert client.get(reverse("telemedicine:thread", args=[thread.public_id])).status_code == 404
    client.force_login(world.nurse)
    html = _text(client.get(reverse("telemedicine:thread", args=[thread.public_id])))
    assert "A doctor will answer." in html


def test_queue_and_inbox_read_a_fixed_number_of_queries(client, world, django_assert_num_queries):
    start(world.patient, subject="One")
    client.force_login(world.reception)
    client.get(reverse("telemedicine:queue"))  # warm the session and caches

    def count(url: str) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    few = count(reverse("telemedicine:queue"))
    for n in range(5):
        start(world.stranger if n % 2 else world.patient, subject=f"More {n}")
    assert count(reverse("telemedicine:queue")) == few
    client.force_login(world.patient)
    client.get(reverse("telemedicine:inbox"))
    few = count(reverse("telemedicine:inbox"))
    start(world.patient, subject="Another")
    assert count(reverse("telemedicine:inbox")) == few


def test_the_menus_link_the_inbox_and_the_queue(client, world):
    client.force_login(world.patient)
    html = _text(client.get(reverse("telemedicine:inbox")))
    menu = html[html.index('aria-label="Main menu"') : html.index("</nav>")]
    assert (
        f'href="{reverse("telemedicine:inbox")}" aria-current="page">Messages with the clinic<'
        in menu
    )
    for user, shown in (
        (world.reception, True),
        (world.nurse, True),
        (world.doctor, True),
        (factories.make_staff(Role.ADMIN, language="en"), False),
    ):
        client.force_login(user)
        html = _text(client.get(reverse("home")))
        menu = html[html.index('aria-label="Main menu"') : html.index("</nav>")]
        assert (reverse("telemedicine:queue") in menu) is shown, user.role
