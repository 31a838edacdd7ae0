"""The live queue: walk-in numbers (also under concurrency), check-in of booked patients,
call / start / done / no-show with their permissions, the patient's live status ("now
seeing 4 of 7, about 25 min"), reception's desk and the public display (numbers only)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role, Specialty
from audit.models import AuditAction, AuditEvent
from scheduling import queue
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    QueueTicket,
    QueueTicketStatus,
)
from scheduling.selectors.queue import queue_display_board, queue_state_for_patient
from tests import factories

pytestmark = pytest.mark.django_db


def _staff(role: str, **profile: object):
    user = factories.make_staff(role, **profile)
    user.language = "en"  # stable texts (staff default to Russian)
    user.save(update_fields=["language"])
    return user


@pytest.fixture
def clinic(db):
    doctor = _staff(Role.DOCTOR, full_name="Doctor Queue")
    location = factories.make_location(time_zone="Europe/Moscow")
    factories.make_working_week(doctor, location)
    ctype = factories.make_consultation_type(doctor, duration_minutes=10)
    return doctor, location, ctype


@pytest.fixture
def desk(db):
    return _staff(Role.RECEPTION)


def _booked_now(doctor, location, ctype, patient, *, seat: int = 1) -> Appointment:
    """A booked appointment starting now (today in any zone). Seats keep several of one
    doctor's appointments at the same time apart for the exclusion constraint."""
    start = timezone.now().replace(microsecond=0)
    return Appointment.objects.create(
        patient=patient.patient_profile,
        doctor=doctor,
        location=location,
        consultation_type=ctype,
        status=AppointmentStatus.BOOKED,
        during=DateTimeTZRange(start, start + ctype.duration),
        seat=seat,
    )


# --- Numbers -----------------------------------------------------------------------------


def test_walk_in_numbers_count_per_location_and_day(clinic, desk):
    doctor, location, _ctype = clinic
    other = factories.make_location(code="north", time_zone="Asia/Yekaterinburg")
    numbers = [queue.queue_ticket_issue(by=desk, location=location).number for _ in range(3)]
    assert numbers == [1, 2, 3]
    assert queue.queue_ticket_issue(by=desk, location=other).number == 1
    ticket = queue.queue_ticket_issue(by=desk, location=location, doctor=doctor)
    assert ticket.number == 4 and ticket.doctor == doctor
    assert ticket.service_date == timezone.localtime(timezone.now(), location.tzinfo).date()
    # Yesterday's tickets do not continue the count.
    QueueTicket.objects.filter(location=location).update(
        service_date=ticket.service_date - timedelta(days=1)
    )
    assert queue.queue_ticket_issue(by=desk, location=location).number == 1
    assert (
        AuditEvent.objects.filter(
            actor=desk, action=AuditAction.CREATE, object_type="scheduling.queueticket"
        ).count()
        == 6
    )


def test_the_queue_day_is_the_locations_own():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    at = datetime(2026, 3, 1, 15, 30, tzinfo=ZoneInfo("UTC"))
    moscow = factories.make_location(code="msk", time_zone="Europe/Moscow")
    vladivostok = factories.make_location(code="vvo", time_zone="Asia/Vladivostok")
    assert str(queue.service_date_for(moscow, at)) == "2026-03-01"  # 18:30 there
    assert str(queue.service_date_for(vladivostok, at)) == "2026-03-02"  # 01:30 there


@pytest.mark.django_db(transaction=True)
def test_concurrent_walk_ins_get_unique_increasing_numbers():
    location = factories.make_location()
    desks = [factories.make_staff(Role.RECEPTION) for _ in range(3)]
    workers = 12
    barrier = threading.Barrier(workers)
    issued: list[int] = []
    errors: list[BaseException] = []

    def issue(index: int) -> None:
        try:
            barrier.wait()
            ticket = queue.queue_ticket_issue(by=desks[index % 3], location=location)
            issued.append(ticket.number)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=issue, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(issued) == list(range(1, workers + 1))
    in_db = list(
        QueueTicket.objects.filter(location=location)
        .order_by("created_at", "id")
        .values_list("number", flat=True)
    )
    assert in_db == list(range(1, workers + 1))  # increasing in the order they were made


def test_only_reception_and_admins_issue_tickets(clinic, patient):
    doctor, location, _ctype = clinic
    with pytest.raises(PermissionDenied):
        queue.queue_ticket_issue(by=patient, location=location)
    with pytest.raises(PermissionDenied):
        queue.queue_ticket_issue(by=doctor, location=location)
    nurse = factories.make_staff(Role.NURSE)
    with pytest.raises(PermissionDenied):
        queue.queue_ticket_issue(by=nurse, location=location)
    assert not QueueTicket.objects.exists()


# --- Check-in and moves ----------------------------------------------------------------------


def test_check_in_marks_arrived_and_links_a_ticket(clinic, desk, patient):
    doctor, location, ctype = clinic
    appointment = _booked_now(doctor, location, ctype, patient)
    ticket = queue.queue_check_in(by=desk, appointment=appointment)
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.ARRIVED
    assert ticket.appointment == appointment and ticket.doctor == doctor
    assert ticket.patient == patient.patient_profile and ticket.number == 1
    # Twice is the same ticket.
    assert queue.queue_check_in(by=desk, appointment=appointment).pk == ticket.pk


def test_check_in_refuses_other_days_and_cancelled(clinic, desk, patient):
    doctor, location, ctype = clinic
    later = _booked_now(doctor, location, ctype, patient)
    start = later.starts_at + timedelta(days=2)
    Appointment.objects.filter(pk=later.pk).update(
        during=DateTimeTZRange(start, start + ctype.duration)
    )
    with pytest.raises(ValidationError, match="today"):
        queue.queue_check_in(by=desk, appointment=later)
    cancelled = _booked_now(doctor, location, ctype, patient, seat=2)
    Appointment.objects.filter(pk=cancelled.pk).update(status=AppointmentStatus.CANCELLED)
    with pytest.raises(ValidationError):
        queue.queue_check_in(by=desk, appointment=cancelled)
    assert not QueueTicket.objects.exists()


def test_moves_follow_the_rules_and_the_appointment(clinic, desk, patient):
    doctor, location, ctype = clinic
    appointment = _booked_now(doctor, location, ctype, patient)
    ticket = queue.queue_check_in(by=desk, appointment=appointment)
    with pytest.raises(PermissionDenied):
        queue.queue_call(by=patient, ticket=ticket)
    other_doctor = factories.make_staff(Role.DOCTOR)
    with pytest.raises(PermissionDenied):
        queue.queue_call(by=other_doctor, ticket=ticket)
    ticket = queue.queue_call(by=doctor, ticket=ticket)  # the doctor of this queue may
    assert ticket.status == QueueTicketStatus.CALLED and ticket.called_at is not None
    assert queue.queue_call(by=desk, ticket=ticket).status == QueueTicketStatus.CALLED
    ticket = queue.queue_start(by=desk, ticket=ticket)
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.IN_PROGRESS
    with pytest.raises(ValidationError):
        queue.queue_no_show(by=desk, ticket=ticket)
    ticket = queue.queue_done(by=doctor, ticket=ticket)
    appointment.refresh_from_db()
    assert ticket.status == QueueTicketStatus.DONE and ticket.done_at is not None
    assert appointment.status == AppointmentStatus.COMPLETED
    walk_in = queue.queue_ticket_issue(by=desk, location=location)
    assert queue.queue_no_show(by=desk, ticket=walk_in).status == QueueTicketStatus.NO_SHOW
    with pytest.raises(ValidationError):
        queue.queue_call(by=desk, ticket=walk_in)


# --- The patient's live status -------------------------------------------------------------


def _queue_with_patient_seventh(clinic, desk, patient):
    """Doctor's queue: 1–3 done, 4 with the doctor (walk-in, 15 min), 5 waiting (booked,
    10-minute consultation), 6 did not come, 7 the patient's. Plus noise in other queues."""
    doctor, location, ctype = clinic
    others = [factories.make_patient() for _ in range(2)]
    tickets = []
    for number in range(1, 8):
        if number == 5:
            appointment = _booked_now(doctor, location, ctype, others[0])
            tickets.append(queue.queue_check_in(by=desk, appointment=appointment))
        elif number == 7:
            tickets.append(
                queue.queue_ticket_issue(
                    by=desk, location=location, doctor=doctor, patient=patient.patient_profile
                )
            )
        else:
            tickets.append(queue.queue_ticket_issue(by=desk, location=location, doctor=doctor))
        # Another doctor's queue and the general queue at the same place: not counted.
        if number in (2, 5):
            queue.queue_ticket_issue(
                by=desk, location=location, doctor=factories.make_staff(Role.DOCTOR)
            )
            queue.queue_ticket_issue(by=desk, location=location)
    by_number = {t.number: t for t in tickets}
    numbers = sorted(by_number)
    assert len(numbers) == 7
    mine = tickets[6]
    for t in tickets[:3]:
        queue.queue_done(by=desk, ticket=queue.queue_start(by=desk, ticket=t))
    queue.queue_start(by=desk, ticket=queue.queue_call(by=desk, ticket=tickets[3]))
    queue.queue_no_show(by=desk, ticket=tickets[5])
    return tickets, mine


def test_patient_sees_now_seeing_x_of_y_and_minutes(clinic, desk, patient):
    tickets, mine = _queue_with_patient_seventh(clinic, desk, patient)
    [status] = queue_state_for_patient(patient)
    assert status.kind == "waiting"
    assert status.number == mine.number
    assert status.now_seeing == tickets[3].number
    assert status.ahead == 2  # the one with the doctor and the booked one still waiting
    assert status.minutes == 15 + 10
    assert status.summary == (
        f"Live queue: now seeing {tickets[3].number} of {mine.number}, about 25 min"
    )
    # The next one is called: two ahead still (called + the one with the doctor).
    queue.queue_call(by=desk, ticket=tickets[4])
    [status] = queue_state_for_patient(patient)
    assert status.now_seeing == tickets[4].number and status.ahead == 2
    # Both done: the patient is next, then called.
    queue.queue_done(by=desk, ticket=tickets[3])
    queue.queue_done(by=desk, ticket=queue.queue_start(by=desk, ticket=tickets[4]))
    [status] = queue_state_for_patient(patient)
    assert status.ahead == 0 and status.summary.startswith("Live queue: you are next")
    queue.queue_call(by=desk, ticket=mine)
    [status] = queue_state_for_patient(patient)
    assert status.kind == "called" and "your turn" in status.summary


def test_positions_without_anyone_called_use_the_number_order(clinic, desk, patient):
    doctor, location, _ctype = clinic
    first = queue.queue_ticket_issue(by=desk, location=location, doctor=doctor)
    queue.queue_ticket_issue(by=desk, location=location, doctor=doctor)
    mine = queue.queue_ticket_issue(
        by=desk, location=location, doctor=doctor, patient=patient.patient_profile
    )
    queue.queue_ticket_issue(by=desk, location=location, doctor=doctor)  # after me
    [status] = queue_state_for_patient(patient)
    assert (status.now_seeing, status.ahead, status.minutes) == (None, 2, 30)
    assert status.summary == f"Live queue: your number is {mine.number}, about 30 min"
    queue.queue_no_show(by=desk, ticket=first)
    [status] = queue_state_for_patient(patient)
    assert status.ahead == 1


def test_booked_appointment_today_shows_its_time(clinic, patient):
    doctor, location, ctype = clinic
    appointment = _booked_now(doctor, location, ctype, patient)
    [status] = queue_state_for_patient(patient)
    local = timezone.localtime(appointment.starts_at, location.tzinfo)
    assert status.kind == "booked"
    assert status.summary == f"Booked {local:%H:%M}"
    # Tomorrow's appointment is not today's business; another patient's not ours.
    assert queue_state_for_patient(factories.make_patient()) == []


def test_patient_page_and_live_partial(client, clinic, desk, patient):
    tickets, mine = _queue_with_patient_seventh(clinic, desk, patient)
    client.force_login(patient)
    page = client.get(reverse("scheduling:queue_me"))
    html = page.content.decode()
    assert page.status_code == 200
    assert f"now seeing {tickets[3].number} of {mine.number}, about 25 min" in html
    assert 'hx-trigger="every 10s"' in html
    partial_url = reverse("scheduling:queue_me_status")
    partial = client.get(partial_url, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "<html" not in partial.content.decode()
    version = partial.context["version"]
    unchanged = client.get(partial_url, {"v": version}, HTTP_HX_REQUEST="true")
    assert unchanged.status_code == 204
    queue.queue_call(by=desk, ticket=tickets[4])
    changed = client.get(partial_url, {"v": version}, HTTP_HX_REQUEST="true")
    assert changed.status_code == 200
    assert f"now seeing {tickets[4].number} of {mine.number}" in changed.content.decode()


# --- Reception's desk ----------------------------------------------------------------------


def test_reception_issues_by_snils_checks_in_and_calls(client, login_staff, clinic, desk):
    doctor, location, ctype = clinic
    snils = factories.valid_snils()
    walk_in_patient = factories.make_patient(snils=snils)
    booked_patient = factories.make_patient(last_name="Забронированная")
    appointment = _booked_now(doctor, location, ctype, booked_patient)
    login_staff(desk)
    url = reverse("scheduling:queue_staff", args=[location.code])
    page = client.get(url)
    assert page.status_code == 200
    assert "Забронированная" in page.content.decode()

    response = client.post(url, {"doctor": doctor.pk, "snils": snils})
    assert response.status_code == 302
    ticket = QueueTicket.objects.get()
    assert ticket.patient == walk_in_patient.patient_profile and ticket.doctor == doctor

    wrong = client.post(url, {"doctor": "", "snils": factories.valid_snils()})
    assert wrong.status_code == 200
    assert "No patient has exactly this SNILS." in wrong.content.decode()
    bad = client.post(url, {"doctor": "", "snils": "123"})
    assert bad.status_code == 200 and QueueTicket.objects.count() == 1

    check_in = reverse("scheduling:queue_check_in", args=[location.code, appointment.public_id])
    assert client.post(check_in).status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.ARRIVED
    booked_ticket = QueueTicket.objects.get(appointment=appointment)

    call = reverse("scheduling:queue_ticket_action", args=[booked_ticket.pk, "call"])
    assert client.get(call).status_code == 302  # a GET changes nothing
    booked_ticket.refresh_from_db()
    assert booked_ticket.status == QueueTicketStatus.WAITING
    assert client.post(call).status_code == 302
    booked_ticket.refresh_from_db()
    assert booked_ticket.status == QueueTicketStatus.CALLED
    unknown = reverse("scheduling:queue_ticket_action", args=[booked_ticket.pk, "delete"])
    assert client.post(unknown).status_code == 404
    listing = client.get(reverse("scheduling:queue_staff_list", args=[location.code]))
    assert "Called" in listing.content.decode()


def test_doctor_sees_only_their_own_tickets(client, login_staff, clinic, desk):
    doctor, location, _ctype = clinic
    mine = queue.queue_ticket_issue(by=desk, location=location, doctor=doctor)
    theirs = queue.queue_ticket_issue(
        by=desk, location=location, doctor=factories.make_staff(Role.DOCTOR)
    )
    login_staff(doctor)
    response = client.get(reverse("scheduling:queue_staff_list", args=[location.code]))
    tickets = list(response.context["tickets"])
    assert tickets == [mine]
    # No walk-in form for a doctor, and posting one is refused.
    page = client.get(reverse("scheduling:queue_staff", args=[location.code]))
    assert page.context["form"] is None
    assert client.post(reverse("scheduling:queue_staff", args=[location.code])).status_code == 404
    action = reverse("scheduling:queue_ticket_action", args=[theirs.pk, "call"])
    assert client.post(action).status_code == 404
    assert AuditEvent.objects.filter(actor=doctor, action=AuditAction.DENIED).exists()
    theirs.refresh_from_db()
    assert theirs.status == QueueTicketStatus.WAITING


def test_a_patient_cannot_act_on_tickets(client, clinic, desk, patient):
    doctor, location, _ctype = clinic
    ticket = queue.queue_ticket_issue(
        by=desk, location=location, doctor=doctor, patient=patient.patient_profile
    )
    client.force_login(patient)
    response = client.post(reverse("scheduling:queue_ticket_action", args=[ticket.pk, "done"]))
    assert response.status_code == 404
    ticket.refresh_from_db()
    assert ticket.status == QueueTicketStatus.WAITING
    assert AuditEvent.objects.filter(
        actor=patient, action=AuditAction.DENIED, patient=patient
    ).exists()


# --- The public display ----------------------------------------------------------------------


def test_display_shows_numbers_and_nothing_else(client, clinic, desk):
    doctor, location, ctype = clinic
    doctor.staff_profile.full_name = "Аристарх Неповторимый"
    doctor.staff_profile.save()
    specialty = Specialty.objects.get(code="therapist")
    patient = factories.make_patient(first_name="Евлампия", last_name="Уникальнова")
    appointment = _booked_now(doctor, location, ctype, patient)
    booked = queue.queue_check_in(by=desk, appointment=appointment)
    walk_in = queue.queue_ticket_issue(by=desk, location=location, doctor=doctor)
    queue.queue_call(by=desk, ticket=booked)

    response = client.get(reverse("scheduling:queue_display", args=[location.code]))
    assert response.status_code == 200
    html = response.content.decode()
    for secret in (
        "Евлампия",
        "Уникальнова",
        "Аристарх",
        "Неповторимый",
        specialty.name_ru,
        specialty.name_en,
        ctype.name_en,
        ctype.name_ru,
        patient.email,
    ):
        assert secret not in html, secret
    assert f">{booked.number}<" in html and f">{walk_in.number}<" in html
    assert 'hx-trigger="every 10s"' in html
    assert "no-store" not in response.get("Cache-Control", "")  # public, no personal data
    board = queue_display_board(location)
    assert (board.called, board.in_service, board.waiting) == (
        [booked.number],
        [],
        [walk_in.number],
    )
    board_url = reverse("scheduling:queue_display_board", args=[location.code])
    partial = client.get(board_url, HTTP_HX_REQUEST="true")
    assert "Уникальнова" not in partial.content.decode()
    same = client.get(board_url, {"v": partial.context["version"]}, HTTP_HX_REQUEST="true")
    assert same.status_code == 204
    assert client.get(reverse("scheduling:queue_display", args=["nowhere"])).status_code == 404
