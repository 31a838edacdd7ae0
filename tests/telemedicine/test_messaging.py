"""Secure messaging: services, selectors and policies (issue 8, item 5).

Routing by topic, the state machine, encryption at rest, records the patient may link a
thread to (their own only), attachments under the records upload rules, rate limits,
notifications without content (one per burst), access for each role, and the audit
trail of every read and write.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import timedelta
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.http import Http404
from django.utils import timezone

from accounts import policies
from accounts import services as account_services
from accounts.models import Department, Role, User
from audit.models import AuditAction, AuditEvent
from notifications.models import Event, Message
from telemedicine import selectors_messaging as selectors
from telemedicine import services_messaging as services
from telemedicine.models import (
    AboutKind,
    MessageAttachment,
    Team,
    Thread,
    ThreadMessage,
    ThreadState,
    Topic,
)
from tests import factories

pytestmark = pytest.mark.django_db


# --- Building a small clinic -------------------------------------------------------------------


@dataclass
class World:
    patient: User  # in the outpatient department, booked with the doctor
    doctor: User  # granted the patient through the booking
    nurse: User  # of the patient's department
    reception: User
    other_nurse: User  # of another department
    other_doctor: User  # no relationship to the patient
    stranger: User  # another patient
    appointment: object


def png_bytes(size: tuple[int, int] = (4, 4)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_upload(name: str = "rash.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes(), content_type="image/png")


def book(patient: User, doctor: User, *, days: int = 2):  # noqa: ANN201
    from scheduling import services as scheduling
    from scheduling.availability import free_slots

    if not doctor.working_hours.exists():
        factories.make_working_week(doctor)
    ctype = factories.make_consultation_type(doctor, name_en="Initial consultation")
    day = timezone.now().date() + timedelta(days=days)
    slot = free_slots([doctor.pk], day, 1, consultation_type=ctype)[doctor.pk][0]
    return scheduling.appointment_book_slot(
        by=None,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slot.start,
    )


def make_world() -> World:
    doctor = factories.make_staff(Role.DOCTOR, full_name="Olga Petrova", language="en")
    nurse = factories.make_staff(Role.NURSE, full_name="Nina Sidorova", language="en")
    reception = factories.make_staff(Role.RECEPTION, full_name="Rita Desk", language="en")
    department = nurse.staff_profile.department
    other_department = Department.objects.create(
        code="surgery", name="Surgery", location=department.location
    )
    # The doctor reaches the patient through the booking (a care grant), not the department.
    doctor.staff_profile.department = other_department
    doctor.staff_profile.save()
    other_nurse = factories.make_staff(Role.NURSE, language="en")
    other_nurse.staff_profile.department = other_department
    other_nurse.staff_profile.save()
    other_doctor = factories.make_staff(Role.DOCTOR, language="en")
    other_doctor.staff_profile.department = None
    other_doctor.staff_profile.save()
    patient = factories.make_patient(first_name="Vera", last_name="Orlova")
    account_services.patient_department_assign(
        by=reception, patient=patient.patient_profile, department=department
    )
    patient.patient_profile.refresh_from_db()
    appointment = book(patient, doctor)
    stranger = factories.make_patient(first_name="Ivan", last_name="Chuzhoy")
    return World(
        patient=patient,
        doctor=doctor,
        nurse=nurse,
        reception=reception,
        other_nurse=other_nurse,
        other_doctor=other_doctor,
        stranger=stranger,
        appointment=appointment,
    )


@pytest.fixture
def world(settings, tmp_path) -> World:
    settings.MEDIA_ROOT = tmp_path
    return make_world()


def start(patient: User, topic: str = Topic.BILLING, **kwargs: object) -> Thread:
    kwargs.setdefault("subject", "Invoice question")
    kwargs.setdefault("body", "I was charged twice for my visit.")
    return services.thread_start(by=patient, patient=patient.patient_profile, topic=topic, **kwargs)


def audits(**filters: object) -> int:
    return AuditEvent.objects.filter(**filters).count()


# --- Starting a thread and routing ---------------------------------------------------------------


def test_billing_and_other_go_to_reception_and_the_patient_reads_it_as_sent(world):
    thread = start(world.patient)
    assert (thread.team, thread.doctor, thread.state) == (Team.RECEPTION, None, ThreadState.OPEN)
    assert thread.messages.get().from_patient
    other = start(world.patient, Topic.OTHER, subject="Parking", body="Is there parking?")
    assert other.team == Team.RECEPTION
    created = AuditEvent.objects.get(
        action=AuditAction.CREATE, object_type="telemedicine.thread", object_id=str(thread.pk)
    )
    assert created.patient == world.patient
    assert created.detail["topic"] == "billing" and created.detail["team"] == "reception"


def test_appointment_thread_goes_to_reception_and_that_appointments_doctor(world):
    thread = start(
        world.patient,
        Topic.APPOINTMENT,
        subject="Running late",
        body="I may be ten minutes late.",
        about_kind=AboutKind.APPOINTMENT,
        about_id=world.appointment.public_id,
    )
    assert thread.team == Team.RECEPTION
    assert thread.doctor == world.doctor
    assert thread.about_kind == AboutKind.APPOINTMENT
    assert thread.about_id == world.appointment.public_id
    assert "Olga Petrova" in thread.about_label
    # Both reception and the appointment's doctor read it; the department's nurse not.
    assert policies.can_view_thread(world.reception, thread)
    assert policies.can_view_thread(world.doctor, thread)
    assert not policies.can_view_thread(world.nurse, thread)


def test_results_thread_goes_to_the_care_team_and_the_doctor_who_ordered(world):
    from tests.records.helpers import receive

    report = receive(world.patient, "glucose", ["5.1"], ordered_by=world.doctor)
    thread = start(
        world.patient,
        Topic.RESULTS,
        subject="My glucose",
        body="Is 5.1 fine?",
        about_kind=AboutKind.LAB_REPORT,
        about_id=report.public_id,
    )
    assert (thread.team, thread.doctor) == (Team.CARE, world.doctor)
    assert policies.can_view_thread(world.nurse, thread)  # the patient's department
    assert policies.can_view_thread(world.doctor, thread)
    assert not policies.can_view_thread(world.reception, thread)
    assert not policies.can_view_thread(world.other_nurse, thread)
    assert not policies.can_view_thread(world.other_doctor, thread)


def test_prescription_thread_names_the_prescriber(world):
    from tests.records.care_helpers import prescription

    rx = prescription(world.patient, world.doctor, medication="Lisinopril 10 mg")
    thread = start(
        world.patient,
        Topic.PRESCRIPTION,
        subject="Side effects",
        body="I cough at night.",
        about_kind=AboutKind.PRESCRIPTION,
        about_id=rx.public_id,
    )
    assert (thread.team, thread.doctor) == (Team.CARE, world.doctor)
    assert thread.about_label.startswith("Lisinopril 10 mg")


def _invoice(patient: User, reception: User):  # noqa: ANN202
    from decimal import Decimal

    from payments import services as payment_services

    return payment_services.invoice_issue(
        by=reception,
        patient=patient.patient_profile,
        description="Ultrasound",
        amount=Decimal("1500.00"),
    )


def test_billing_thread_about_an_own_invoice_goes_to_reception(world):
    invoice = _invoice(world.patient, world.reception)
    thread = start(world.patient, about_kind=AboutKind.INVOICE, about_id=invoice.public_id)
    assert (thread.team, thread.doctor) == (Team.RECEPTION, None)
    assert thread.about_kind == AboutKind.INVOICE
    assert invoice.number in thread.about_label
    theirs = _invoice(world.stranger, world.reception)
    with pytest.raises(ValidationError) as caught:
        start(world.patient, about_kind=AboutKind.INVOICE, about_id=theirs.public_id)
    assert "about" in caught.value.message_dict
    with pytest.raises(ValidationError):  # an invoice is not what results are about
        start(
            world.patient, Topic.RESULTS, about_kind=AboutKind.INVOICE, about_id=invoice.public_id
        )
    assert Thread.objects.count() == 1


def test_clinical_topic_without_any_care_team_goes_to_reception(world):
    lonely = factories.make_patient()
    thread = start(lonely, Topic.RESULTS, subject="Results?", body="When are they ready?")
    assert thread.team == Team.RECEPTION
    created = AuditEvent.objects.get(
        action=AuditAction.CREATE, object_type="telemedicine.thread", object_id=str(thread.pk)
    )
    assert created.detail["routed_to_reception_for_lack_of_care_team"] is True


def test_a_record_of_another_patient_cannot_be_linked(world):
    theirs = book(world.stranger, world.other_doctor, days=3)
    before = Thread.objects.count()
    with pytest.raises(ValidationError) as caught:
        start(
            world.patient,
            Topic.APPOINTMENT,
            about_kind=AboutKind.APPOINTMENT,
            about_id=theirs.public_id,
        )
    assert "about" in caught.value.message_dict
    assert Thread.objects.count() == before
    assert AuditEvent.objects.filter(
        actor=world.patient, action=AuditAction.DENIED, detail__what="message_thread_about"
    ).exists()


def test_the_link_must_match_the_topic(world):
    with pytest.raises(ValidationError) as caught:
        start(
            world.patient,
            Topic.RESULTS,
            about_kind=AboutKind.APPOINTMENT,
            about_id=world.appointment.public_id,
        )
    assert "about" in caught.value.message_dict
    assert not Thread.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"body": "   "}, "body", "Write your message."),
        ({"body": "x" * 5001}, "body", "too long"),
        ({"subject": ""}, "subject", "Give your message a subject."),
        ({"subject": "s" * 151}, "subject", "too long"),
    ],
)
def test_empty_or_too_long_input_is_refused_with_a_clear_message(world, fields, field, text):
    from django.utils import translation

    with translation.override("en"), pytest.raises(ValidationError) as caught:
        start(world.patient, **fields)
    assert text in " ".join(caught.value.message_dict[field])
    assert not Thread.objects.exists() and not ThreadMessage.objects.exists()


def test_staff_cannot_start_a_thread_as_a_patient(world):
    with pytest.raises(PermissionDenied):
        services.thread_start(
            by=world.reception,
            patient=world.patient.patient_profile,
            topic=Topic.OTHER,
            subject="x",
            body="y",
        )
    with pytest.raises(PermissionDenied):  # nor a patient for someone else
        services.thread_start(
            by=world.stranger,
            patient=world.patient.patient_profile,
            topic=Topic.OTHER,
            subject="x",
            body="y",
        )


# --- Encryption at rest ------------------------------------------------------------------------


def test_subject_body_and_label_are_encrypted_at_rest(world):
    thread = start(
        world.patient,
        Topic.APPOINTMENT,
        subject="Canary-subject-Zebra",
        body="Canary-body-Walrus",
        about_kind=AboutKind.APPOINTMENT,
        about_id=world.appointment.public_id,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT subject, about_label FROM telemedicine_thread WHERE id = %s", [thread.pk]
        )
        subject, label = cursor.fetchone()
        cursor.execute(
            "SELECT body FROM telemedicine_threadmessage WHERE thread_id = %s", [thread.pk]
        )
        (body,) = cursor.fetchone()
    assert "Zebra" not in subject and "Walrus" not in body and "Olga" not in label
    thread.refresh_from_db()
    assert thread.subject == "Canary-subject-Zebra"


# --- Replies and the state machine -------------------------------------------------------------


def test_a_thread_goes_from_patient_to_clinic_and_back(world):
    thread = start(world.patient)
    reply = services.thread_reply(by=world.reception, thread=thread, body="We will refund you.")
    thread.refresh_from_db()
    assert not reply.from_patient
    assert thread.state == ThreadState.WAITING_PATIENT
    assert thread.assigned_to == world.reception  # answering takes it
    services.thread_reply(by=world.patient, thread=thread, body="Thank you!")
    thread.refresh_from_db()
    assert thread.state == ThreadState.WAITING_CLINIC
    assert thread.last_patient_message_at > thread.last_clinic_message_at
    assert [m.from_patient for m in thread.messages.all()] == [True, False, True]
    assert audits(action=AuditAction.CREATE, object_type="telemedicine.threadmessage") == 2


def test_a_second_patient_message_before_any_answer_keeps_the_thread_open(world):
    thread = start(world.patient)
    services.thread_reply(by=world.patient, thread=thread, body="Also: the receipt.")
    thread.refresh_from_db()
    assert thread.state == ThreadState.OPEN


def test_a_closed_thread_takes_no_messages_until_reopened(world):
    thread = start(world.patient)
    services.thread_close(by=world.patient, thread=thread)
    thread.refresh_from_db()
    assert thread.closed and thread.closed_by == world.patient and thread.closed_at
    for author in (world.patient, world.reception):
        with pytest.raises(ValidationError):
            services.thread_reply(by=author, thread=thread, body="Hello?")
    assert thread.messages.count() == 1
    services.thread_reopen(by=world.patient, thread=thread)
    thread.refresh_from_db()
    assert thread.state == ThreadState.OPEN and thread.closed_at is None
    services.thread_reply(by=world.reception, thread=thread, body="How can we help?")
    assert thread.messages.count() == 2


def test_staff_set_states_along_the_transitions_only(world):
    thread = start(world.patient)
    thread = services.thread_set_state(
        by=world.reception, thread=thread, state=ThreadState.WAITING_PATIENT
    )
    thread = services.thread_set_state(by=world.reception, thread=thread, state=ThreadState.CLOSED)
    with pytest.raises(ValidationError):  # closed → waiting: reopen first
        services.thread_set_state(
            by=world.reception, thread=thread, state=ThreadState.WAITING_PATIENT
        )
    changes = AuditEvent.objects.filter(
        action=AuditAction.CHANGE, object_id=str(thread.pk), detail__what="message_thread_state"
    )
    assert [(e.detail["from"], e.detail["to"]) for e in changes.order_by("seq")] == [
        ("open", "waiting_patient"),
        ("waiting_patient", "closed"),
    ]
    with pytest.raises(PermissionDenied):  # the patient does not manage states
        services.thread_set_state(by=world.patient, thread=thread, state=ThreadState.OPEN)


def test_take_and_give_back(world):
    thread = start(world.patient)
    thread = services.thread_take(by=world.reception, thread=thread)
    assert thread.assigned_to == world.reception
    other_desk = factories.make_staff(Role.RECEPTION)
    with pytest.raises(ValidationError):  # only the taker gives it back
        services.thread_take(by=other_desk, thread=thread, take=False)
    thread = services.thread_take(by=other_desk, thread=thread)  # but may take it over
    assert thread.assigned_to == other_desk
    with pytest.raises(PermissionDenied):  # a nurse does not see reception's threads
        services.thread_take(by=world.nurse, thread=thread)


def test_routing_to_the_care_team_needs_one(world):
    thread = start(world.patient, Topic.OTHER, subject="Diet", body="What should I eat?")
    services.thread_take(by=world.reception, thread=thread)
    thread = services.thread_route(by=world.reception, thread=thread, team=Team.CARE)
    assert thread.team == Team.CARE and thread.assigned_to is None
    assert not policies.can_view_thread(world.reception, thread)
    assert policies.can_view_thread(world.nurse, thread)

    lonely = factories.make_patient()
    theirs = start(lonely, Topic.OTHER, subject="Diet", body="What should I eat?")
    with pytest.raises(ValidationError) as caught:
        services.thread_route(by=world.reception, thread=theirs, team=Team.CARE)
    assert "team" in caught.value.message_dict
    theirs.refresh_from_db()
    assert theirs.team == Team.RECEPTION


# --- Access -------------------------------------------------------------------------------------


def test_who_sees_which_thread(world):
    billing = start(world.patient)
    care = start(world.patient, Topic.OTHER, subject="Diet", body="What should I eat?")
    care = services.thread_route(by=world.reception, thread=care, team=Team.CARE)
    theirs = start(world.stranger)
    admin = factories.make_staff(Role.ADMIN)

    def visible(user: User) -> set[int]:
        return set(selectors.threads_visible_to(user).values_list("pk", flat=True))

    assert visible(world.patient) == {billing.pk, care.pk}
    assert visible(world.stranger) == {theirs.pk}
    assert visible(world.reception) == {billing.pk, theirs.pk}
    assert visible(world.nurse) == {care.pk}
    assert visible(world.doctor) == {care.pk}  # granted through the booking
    assert visible(world.other_nurse) == visible(world.other_doctor) == set()
    assert visible(admin) == set()
    # The queryset and the policy agree, thread by thread.
    for user in (world.patient, world.reception, world.nurse, world.doctor, world.other_nurse):
        for thread in (billing, care, theirs):
            assert policies.can_view_thread(user, thread) == (thread.pk in visible(user))


def test_reading_someone_elses_thread_is_a_recorded_404(world):
    theirs = start(world.stranger)
    with pytest.raises(Http404):
        selectors.thread_get_for(world.patient, theirs.public_id)
    denial = AuditEvent.objects.get(actor=world.patient, action=AuditAction.DENIED)
    assert denial.patient == world.stranger
    with pytest.raises(Http404):  # a missing id looks the same
        selectors.thread_get_for(world.patient, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(Http404):
        selectors.thread_get_for(world.nurse, theirs.public_id)


def test_staff_reading_a_thread_is_an_audited_access_with_the_patient(world):
    thread = start(world.patient)
    page = selectors.thread_page(world.reception, thread.public_id)
    assert [m.body for m in page.messages] == ["I was charged twice for my visit."]
    assert page.messages[0].is_new  # the reception has not read it yet
    view = AuditEvent.objects.get(actor=world.reception, action=AuditAction.VIEW)
    assert (view.patient, view.object_id) == (world.patient, str(thread.pk))


def test_unread_markers_for_each_side(world):
    thread = start(world.patient)
    assert selectors.unread_count(world.reception) == 1
    assert selectors.unread_count(world.patient) == 0
    reply = services.thread_reply(by=world.reception, thread=thread, body="Refunded.")
    assert selectors.unread_count(world.reception) == 0  # they wrote after reading
    assert selectors.unread_count(world.patient) == 1
    inbox = selectors.inbox(world.patient)
    assert [t.unread for t in inbox.threads] == [True] and inbox.unread == 1
    services.thread_mark_read(by=world.patient, thread=thread, up_to=reply.created_at)
    assert selectors.unread_count(world.patient) == 0
    # The marker never moves back.
    services.thread_mark_read(
        by=world.patient, thread=thread, up_to=reply.created_at - timedelta(days=1)
    )
    assert selectors.unread_count(world.patient) == 0


def test_poll_is_silent_without_changes_and_recorded_with_them(world):
    thread = start(world.patient)
    page = selectors.thread_page(world.patient, thread.public_id)
    recorded = audits(actor=world.patient, action=AuditAction.VIEW)
    assert selectors.thread_poll(world.patient, thread.public_id, page.version) is None
    assert audits(actor=world.patient, action=AuditAction.VIEW) == recorded
    services.thread_reply(by=world.reception, thread=thread, body="Refunded.")
    polled = selectors.thread_poll(world.patient, thread.public_id, page.version)
    assert polled is not None and polled.new_count == 1
    assert polled.messages[-1].body == "Refunded."
    assert audits(actor=world.patient, action=AuditAction.VIEW) == recorded + 1
    with pytest.raises(Http404):  # polling someone else's is refused like the page
        selectors.thread_poll(world.stranger, thread.public_id, "")


# --- Attachments ---------------------------------------------------------------------------------


def test_an_attachment_is_checked_by_content_and_stored_encrypted(world, tmp_path):
    thread = start(world.patient, upload=png_upload())
    attachment = MessageAttachment.objects.get()
    assert attachment.message.thread == thread
    assert attachment.content_type == "image/png"
    stored = (tmp_path / attachment.file.name).read_bytes()
    assert not stored.startswith(b"\x89PNG")  # Fernet token on disk
    assert "rash" not in attachment.file.name  # the uploader's name is not kept
    with attachment.file.open("rb") as handle:
        assert handle.read() == png_bytes()
    got = selectors.attachment_get_for(world.reception, attachment.public_id)
    assert got == attachment
    assert AuditEvent.objects.filter(
        actor=world.reception, action=AuditAction.DOWNLOAD, patient=world.patient
    ).exists()
    with pytest.raises(Http404):
        selectors.attachment_get_for(world.stranger, attachment.public_id)
    with pytest.raises(Http404):
        selectors.attachment_get_for(world.nurse, attachment.public_id)


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"#!/bin/sh\nrm -rf /\n", "script.pdf"),  # not what its name says
        (b"", "empty.png"),
        (png_bytes() + b"PK\x03\x04hidden-zip", "photo.png"),  # data after the image
    ],
)
def test_a_file_the_records_rules_refuse_changes_nothing(world, tmp_path, content, name):
    thread = start(world.patient)
    files_before = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    with pytest.raises(ValidationError) as caught:
        services.thread_reply(
            by=world.patient,
            thread=thread,
            body="See the file.",
            upload=SimpleUploadedFile(name, content, content_type="image/png"),
        )
    assert "file" in caught.value.message_dict
    assert thread.messages.count() == 1 and not MessageAttachment.objects.exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == files_before


def test_a_failed_write_leaves_no_file_behind(world, tmp_path):
    thread = start(world.patient)
    services.thread_close(by=world.patient, thread=thread)
    with pytest.raises(ValidationError):
        services.thread_reply(
            by=world.patient, thread=thread, body="One more thing", upload=png_upload()
        )
    assert not MessageAttachment.objects.exists()
    folder = tmp_path / "messages"
    assert (list(folder.iterdir()) if folder.exists() else []) == []


# --- Rate limits ----------------------------------------------------------------------------------


def test_patients_are_rate_limited(world):
    thread = start(world.patient)
    for n in range(services.PATIENT_MESSAGE_LIMIT - 1):
        services.thread_reply(by=world.patient, thread=thread, body=f"Message {n}")
    with pytest.raises(ValidationError) as caught:
        services.thread_reply(by=world.patient, thread=thread, body="One too many")
    assert caught.value.code == "rate_limited"
    assert thread.messages.count() == services.PATIENT_MESSAGE_LIMIT
    # Staff are not limited, and the window passes.
    services.thread_reply(by=world.reception, thread=thread, body="We are here.")
    later = timezone.now() + services.PATIENT_MESSAGE_WINDOW + timedelta(seconds=1)
    with mock.patch("telemedicine.services_messaging.timezone.now", return_value=later):
        services.thread_reply(by=world.patient, thread=thread, body="Later on")


def test_new_threads_are_limited_per_day(world):
    for n in range(services.PATIENT_THREAD_LIMIT):
        thread = start(world.patient, subject=f"Question {n}")
        ThreadMessage.objects.filter(thread=thread).update(
            created_at=timezone.now() - timedelta(hours=1)  # not the message limit
        )
    with pytest.raises(ValidationError) as caught:
        start(world.patient, subject="Yet another")
    assert caught.value.code == "rate_limited"
    assert Thread.objects.count() == services.PATIENT_THREAD_LIMIT


# --- Notifications -----------------------------------------------------------------------------


def _notifications(user: User) -> list[Message]:
    return list(Message.objects.filter(user=user, event=Event.NEW_MESSAGE).order_by("id"))


def test_clinic_reply_notifies_the_patient_once_per_burst(world):
    thread = start(world.patient)
    assert _notifications(world.reception) == []  # staff get the queue, no email
    first = services.thread_reply(by=world.reception, thread=thread, body="A")
    sent = _notifications(world.patient)
    assert len(sent) == 1
    assert (sent[0].object_type, sent[0].object_id) == ("thread", thread.pk)
    for body in ("B", "C", "D"):  # a burst, unread: no more emails
        services.thread_reply(by=world.reception, thread=thread, body=body)
    assert len(_notifications(world.patient)) == 1
    # Read, then a new reply within the hour: still one (the hourly key).
    services.thread_mark_read(by=world.patient, thread=thread, up_to=timezone.now())
    services.thread_reply(by=world.reception, thread=thread, body="E")
    assert len(_notifications(world.patient)) == 1
    # Read again, and a reply two hours later: a second notification.
    services.thread_mark_read(by=world.patient, thread=thread, up_to=timezone.now())
    later = timezone.now() + timedelta(hours=2)
    with mock.patch("telemedicine.services_messaging.timezone.now", return_value=later):
        services.thread_reply(by=world.reception, thread=thread, body="F")
    assert len(_notifications(world.patient)) == 2
    assert first.pk  # the replies themselves were all written
    assert thread.messages.filter(from_patient=False).count() == 6


def test_the_email_says_nothing_of_the_conversation(world, smtp_server, settings):
    from notifications import services as notification_services

    thread = start(
        world.patient, subject="Canary-subject-Zebra", body="Canary-body-Walrus about insulin"
    )
    services.thread_reply(
        by=world.reception, thread=thread, body="Canary-reply-Narwhal: your insulin dose"
    )
    (row,) = _notifications(world.patient)
    notification_services.message_send(message_id=row.pk)
    (received,) = smtp_server.wait_for(1)
    assert received.recipients == (world.patient.email,)
    for canary in ("Zebra", "Walrus", "Narwhal", "insulin", "Invoice", "Rita", "Billing"):
        assert canary.lower() not in received.text.lower()
    assert "new message" in received.text.lower()


# --- Every write is audited in its own transaction ------------------------------------------------


def test_a_refused_write_records_no_change(world):
    thread = start(world.patient)
    before = audits(action__in=[AuditAction.CREATE, AuditAction.CHANGE])
    with pytest.raises(ValidationError):
        services.thread_reply(by=world.patient, thread=thread, body="")
    with pytest.raises(PermissionDenied):
        services.thread_reply(by=world.stranger, thread=thread, body="Hi")
    assert audits(action__in=[AuditAction.CREATE, AuditAction.CHANGE]) == before


def test_the_audit_event_rolls_back_with_the_write(world):
    thread = start(world.patient)
    before = (audits(), ThreadMessage.objects.count())
    with (
        mock.patch(
            "telemedicine.services_messaging.audit_record", side_effect=RuntimeError("audit down")
        ),
        pytest.raises(RuntimeError),
    ):
        services.thread_reply(by=world.reception, thread=thread, body="Hello")
    assert (audits(), ThreadMessage.objects.count()) == before
    thread.refresh_from_db()
    assert thread.state == ThreadState.OPEN


# --- Demo data ---------------------------------------------------------------------------------


def test_demo_conversations_are_made_once(world):
    from telemedicine.demo_messaging import seed_messaging_demo

    first = factories.make_patient(email="patient01@clinic.test")
    third = factories.make_patient(email="patient03@clinic.test")
    factories.make_staff(Role.RECEPTION, email="reception@clinic.test")
    assert seed_messaging_demo() == {"message threads": 2}
    assert seed_messaging_demo() == {"message threads": 0}
    answered = Thread.objects.get(patient__user=first)
    assert answered.state == ThreadState.WAITING_PATIENT
    assert answered.messages.count() == 2
    waiting = Thread.objects.get(patient__user=third)
    assert waiting.state == ThreadState.OPEN and waiting.clinic_turn
