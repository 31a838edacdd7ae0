"""Staff schedule pages: the doctor's day and week, today's lists, status changes,
booking, moving and cancelling for a patient, templates and time off, capacity, review
moderation. Times are shown in the location's zone, named."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from scheduling import availability, services
from scheduling.models import (
    Appointment,
    AppointmentEvent,
    AppointmentSource,
    AppointmentStatus,
    CapacityOverride,
    DoctorReview,
    ExceptionKind,
    ScheduleException,
    WorkingHours,
)
from scheduling.selectors.staff import slot_value
from tests import factories

pytestmark = pytest.mark.django_db
EKB = ZoneInfo("Asia/Yekaterinburg")
MSK = ZoneInfo("Europe/Moscow")


def _en(user):
    user.language = "en"
    user.save(update_fields=["language"])
    return user


@pytest.fixture
def ekb():
    """A doctor in Yekaterinburg (UTC+5), 09:00–13:00 every day; reception in Moscow."""
    location = factories.make_location(code="ekb", time_zone="Asia/Yekaterinburg")
    doctor = _en(factories.make_staff(Role.DOCTOR, full_name="Ольга Уральская"))
    doctor.staff_profile.location = location
    doctor.staff_profile.save()
    factories.make_working_week(doctor, location)
    ctype = factories.make_consultation_type(doctor, name_en="Check-up")
    return doctor, location, ctype


@pytest.fixture
def desk(db):
    return _en(factories.make_staff(Role.RECEPTION))


def _tomorrow(tz=EKB):
    return timezone.now().astimezone(tz).date() + timedelta(days=1)


def _book(doctor, ctype, hh, mm=0, *, patient=None, tz=EKB, day=None):
    patient = patient or factories.make_patient(last_name=f"Пациентова{hh:02d}{mm:02d}")
    return services.appointment_book_slot(
        by=None,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=datetime.combine(day or _tomorrow(tz), time(hh, mm), tzinfo=tz),
    )


def _now_appointment(doctor, ctype):
    """An appointment going on now (so it is on today's list in any zone)."""
    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

    patient = factories.make_patient(last_name="Сегодняшняя")
    start = timezone.now() - timedelta(minutes=5)
    return Appointment.objects.create(
        patient=patient.patient_profile,
        doctor=doctor,
        location=doctor.staff_profile.location or factories.make_location(),
        consultation_type=ctype,
        status=AppointmentStatus.BOOKED,
        during=DateTimeTZRange(start, start + timedelta(minutes=30)),
    )


def _day_url(doctor, day=None):
    return (
        f"{reverse('scheduling:staff_day', args=[doctor.pk])}?date={(day or _tomorrow()):%Y-%m-%d}"
    )


# --- Day list and time zones ---------------------------------------------------------------


def test_reception_in_moscow_sees_an_ekaterinburg_day_in_its_own_zone(
    client, login_staff, ekb, desk
):
    doctor, _location, ctype = ekb
    appointment = _book(doctor, ctype, 9)
    login_staff(desk)
    response = client.get(_day_url(doctor))
    html = response.content.decode()
    assert response.status_code == 200
    assert "09:00–09:30" in html  # Yekaterinburg wall clock, not Moscow's 07:00
    assert "07:00" not in html
    assert "Asia/Yekaterinburg (UTC+05:00)" in html
    assert appointment.patient.full_name() in html
    assert 'class="status-badge status-badge--neutral">Booked<' in html
    # Reception sees the schedule, never the medical record.
    assert reverse("accounts:patient_record", args=[appointment.patient_id]) not in html
    assert ">Check in<" in html
    event = AuditEvent.objects.filter(actor=desk, action=AuditAction.VIEW).latest("seq")
    assert event.detail["what"] == "day" and event.detail["ids"] == [str(appointment.pk)]


def test_the_doctor_sees_their_day_with_links_to_the_records(client, login_staff, ekb):
    doctor, _location, ctype = ekb
    appointment = _book(doctor, ctype, 10, 30)
    login_staff(doctor)
    response = client.get(_day_url(doctor))
    html = response.content.decode()
    assert "10:30–11:00" in html and "Asia/Yekaterinburg" in html
    assert reverse("accounts:patient_record", args=[appointment.patient_id]) in html
    # The booking gave the doctor care access: the link opens the record.
    assert (
        client.get(reverse("accounts:patient_record", args=[appointment.patient_id])).status_code
        == 200
    )
    # A booked patient can be marked as not having come; starting needs check-in first.
    assert ">No-show<" in html and ">Start<" not in html


def test_day_list_queries_do_not_grow_with_the_appointments(
    client, login_staff, django_assert_max_num_queries
):
    doctor = _en(factories.make_staff(Role.DOCTOR))
    location = factories.make_location()
    factories.make_working_week(doctor, location, start="08:00", end="18:00")
    ctype = factories.make_consultation_type(doctor)
    day = _tomorrow(MSK)
    for hh in (8, 9):
        _book(doctor, ctype, hh, tz=MSK)
    other_day = day + timedelta(days=1)
    for hh in range(8, 18):
        _book(doctor, ctype, hh, tz=MSK, day=other_day)
    login_staff(doctor)
    client.get(_day_url(doctor, day))  # warm the session
    with CaptureQueriesContext(connection) as two:
        response = client.get(_day_url(doctor, day))
    assert response.content.decode().count('class="status-badge') == 2
    with django_assert_max_num_queries(len(two.captured_queries)):
        response = client.get(_day_url(doctor, other_day))
    assert response.content.decode().count('class="status-badge') == 10


def test_status_changes_follow_the_transitions(client, login_staff, ekb, desk):
    doctor, _location, ctype = ekb
    appointment = _book(doctor, ctype, 9)
    status_url = reverse("scheduling:staff_appointment_status", args=[appointment.public_id])

    login_staff(desk)
    response = client.post(status_url, {"status": AppointmentStatus.ARRIVED, "back": "day"})
    assert response.status_code == 302 and response["Location"].startswith(
        reverse("scheduling:staff_day", args=[doctor.pk])
    )
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.ARRIVED
    assert appointment.events.filter(to_status=AppointmentStatus.ARRIVED, by=desk).exists()
    client.post(reverse("account_logout"))

    login_staff(doctor)
    html = client.get(_day_url(doctor)).content.decode()
    assert ">Start<" in html and ">Complete<" in html and ">Check in<" not in html
    client.post(status_url, {"status": AppointmentStatus.IN_PROGRESS})
    client.post(status_url, {"status": AppointmentStatus.COMPLETED})
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.COMPLETED
    # A change the transitions do not allow: a message, nothing changes, no error page.
    response = client.post(status_url, {"status": AppointmentStatus.ARRIVED}, follow=True)
    assert response.status_code == 200
    assert "cannot become" in response.content.decode()
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.COMPLETED


def test_a_nurse_sees_her_departments_day_read_only(client, login_staff, ekb):
    doctor, _location, ctype = ekb
    nurse = _en(factories.make_staff(Role.NURSE))
    assert nurse.staff_profile.department_id == doctor.staff_profile.department_id
    appointment = _now_appointment(doctor, ctype)
    login_staff(nurse)
    html = client.get(reverse("scheduling:staff_schedule")).content.decode()
    assert appointment.patient.full_name() in html
    assert "Ольга Уральская" in html
    assert "<form" not in html.split("<main")[1].split("</main>")[0]
    day = client.get(_day_url(doctor))
    assert day.status_code == 200
    assert ">Check in<" not in day.content.decode()
    assert client.get(reverse("scheduling:staff_hours", args=[doctor.pk])).status_code == 404
    status_url = reverse("scheduling:staff_appointment_status", args=[appointment.public_id])
    assert client.post(status_url, {"status": "arrived"}).status_code == 404


def test_the_workplace_card_loads_todays_list(client, login_staff, ekb):
    doctor, _location, _ctype = ekb
    login_staff(doctor)
    home = client.get("/").content.decode()
    assert 'hx-get="/staff/schedule/"' in home
    assert "Today&#x27;s patients" in home or "Today's patients" in home
    fragment = client.get(reverse("scheduling:staff_schedule"), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert "<html" not in fragment.content.decode()
    assert "Asia/Yekaterinburg" in fragment.content.decode()
    # Without htmx, the doctor goes to their day.
    assert client.get(reverse("scheduling:staff_schedule"))["Location"] == reverse(
        "scheduling:staff_day", args=[doctor.pk]
    )


def test_reception_picks_a_doctor(client, login_staff, ekb, desk):
    doctor, _location, _ctype = ekb
    login_staff(desk)
    html = client.get(reverse("scheduling:staff_schedule")).content.decode()
    assert "Ольга Уральская" in html
    assert reverse("scheduling:staff_book", args=[doctor.pk]) in html


def test_week_shows_free_booked_and_blocked_slots(client, login_staff, ekb):
    doctor, _location, ctype = ekb
    _book(doctor, ctype, 9)
    day = _tomorrow()
    ScheduleException.objects.create(
        doctor=doctor,
        kind=ExceptionKind.BLOCKED,
        during=(
            datetime.combine(day, time(11), tzinfo=EKB),
            datetime.combine(day, time(12), tzinfo=EKB),
        ),
    )
    login_staff(doctor)
    url = reverse("scheduling:staff_week", args=[doctor.pk])
    html = client.get(f"{url}?start={day:%Y-%m-%d}").content.decode()
    assert "Asia/Yekaterinburg (UTC+05:00)" in html
    assert html.count(">Booked<") == 1
    assert html.count(">Blocked<") == 2
    assert html.count(">Free<") == 7 * 8 - 3
    assert ">09:00<" in html and ">12:30<" in html


# --- Booking for a patient -------------------------------------------------------------------


def test_reception_finds_a_patient_and_books_a_free_slot(client, login_staff, ekb, desk):
    doctor, _location, ctype = ekb
    snils = factories.valid_snils()
    patient = factories.make_patient(last_name="Записанная", snils=snils)
    login_staff(desk)
    book_url = reverse("scheduling:staff_book", args=[doctor.pk])
    assert client.get(book_url).status_code == 200
    found = client.post(book_url, {"query": snils})
    target = reverse("scheduling:staff_book_patient", args=[doctor.pk, patient.patient_profile.pk])
    assert found.status_code == 302 and found["Location"] == target
    assert snils not in found["Location"]

    page = client.get(f"{target}?consultation_type={ctype.pk}&date={_tomorrow():%Y-%m-%d}")
    html = page.content.decode()
    assert "Записанная" in html
    assert "09:00 — Asia/Yekaterinburg (UTC+05:00)" in html
    start = datetime.combine(_tomorrow(), time(10), tzinfo=EKB)
    response = client.post(
        target,
        {
            "consultation_type": ctype.pk,
            "date": f"{_tomorrow():%Y-%m-%d}",
            "start": slot_value(start),
        },
    )
    assert response.status_code == 302
    appointment = Appointment.objects.get(patient=patient.patient_profile)
    assert appointment.status == AppointmentStatus.BOOKED
    assert appointment.source == AppointmentSource.RECEPTION
    assert appointment.starts_at == start
    assert AppointmentEvent.objects.filter(appointment=appointment, by=desk).exists()
    day = client.get(response["Location"]).content.decode()
    assert "Записанная" in day and "10:00–10:30" in day
    assert "Booked: " in day


def test_an_unknown_document_says_so(client, login_staff, ekb, desk):
    doctor, _location, _ctype = ekb
    login_staff(desk)
    response = client.post(
        reverse("scheduling:staff_book", args=[doctor.pk]), {"query": factories.valid_snils()}
    )
    assert response.status_code == 200
    assert "No patient has exactly this SNILS" in response.content.decode()


def test_a_slot_taken_meanwhile_offers_the_nearest_free_times(client, login_staff, ekb, desk):
    doctor, _location, ctype = ekb
    first = _book(doctor, ctype, 9)
    patient = factories.make_patient()
    login_staff(desk)
    target = reverse("scheduling:staff_book_patient", args=[doctor.pk, patient.patient_profile.pk])
    response = client.post(
        target,
        {
            "consultation_type": ctype.pk,
            "date": f"{_tomorrow():%Y-%m-%d}",
            "start": slot_value(first.starts_at),
        },
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert "That time has just been taken" in html
    assert f"{_tomorrow():%Y-%m-%d} 09:30 — Asia/Yekaterinburg (UTC+05:00)" in html
    assert not Appointment.objects.filter(patient=patient.patient_profile).exists()
    # One of the alternatives books.
    alternative = datetime.combine(_tomorrow(), time(9, 30), tzinfo=EKB)
    response = client.post(
        target,
        {
            "consultation_type": ctype.pk,
            "date": f"{_tomorrow():%Y-%m-%d}",
            "start": slot_value(alternative),
        },
    )
    assert response.status_code == 302
    assert Appointment.objects.get(patient=patient.patient_profile).starts_at == alternative


def test_a_time_must_be_chosen(client, login_staff, ekb, desk):
    doctor, _location, ctype = ekb
    patient = factories.make_patient()
    login_staff(desk)
    target = reverse("scheduling:staff_book_patient", args=[doctor.pk, patient.patient_profile.pk])
    response = client.post(
        target, {"consultation_type": ctype.pk, "date": f"{_tomorrow():%Y-%m-%d}", "start": "soon"}
    )
    assert response.status_code == 200
    assert "There is a problem" in response.content.decode()
    assert not Appointment.objects.exists()


def test_reception_moves_and_cancels_for_the_patient(client, login_staff, ekb, desk):
    doctor, _location, ctype = ekb
    appointment = _book(doctor, ctype, 9)
    login_staff(desk)
    page = client.get(reverse("scheduling:staff_appointment", args=[appointment.public_id]))
    assert page.status_code == 200
    assert "Asia/Yekaterinburg (UTC+05:00)" in page.content.decode()
    move_url = reverse("scheduling:staff_appointment_reschedule", args=[appointment.public_id])
    html = client.get(move_url).content.decode()
    assert "11:00 — Asia/Yekaterinburg" in html
    new_start = datetime.combine(_tomorrow(), time(11), tzinfo=EKB)
    response = client.post(
        move_url, {"date": f"{_tomorrow():%Y-%m-%d}", "start": slot_value(new_start)}
    )
    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.starts_at == new_start
    assert appointment.events.filter(kind="moved").exists()

    cancel_url = reverse("scheduling:staff_appointment_cancel", args=[appointment.public_id])
    refused = client.post(cancel_url, {"reason": ""})
    assert refused.status_code == 400
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED
    response = client.post(cancel_url, {"reason": "the patient called"})
    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    assert appointment.cancellation_fee == 0
    assert appointment.cancellation_reason == "the patient called"


def test_moving_onto_a_taken_slot_offers_alternatives(client, login_staff, ekb, desk):
    doctor, _location, ctype = ekb
    appointment = _book(doctor, ctype, 9)
    other = _book(doctor, ctype, 12)
    login_staff(desk)
    move_url = reverse("scheduling:staff_appointment_reschedule", args=[appointment.public_id])
    response = client.post(
        move_url, {"date": f"{_tomorrow():%Y-%m-%d}", "start": slot_value(other.starts_at)}
    )
    assert response.status_code == 409
    assert "That time has just been taken" in response.content.decode()
    appointment.refresh_from_db()
    assert appointment.starts_at.astimezone(EKB).hour == 9


# --- Templates, time off, capacity -------------------------------------------------------------


def test_a_doctor_adds_working_hours_and_the_slots_appear(client, login_staff):
    doctor = _en(factories.make_staff(Role.DOCTOR))
    location = factories.make_location()
    day = _tomorrow(MSK)
    login_staff(doctor)
    url = reverse("scheduling:staff_hours", args=[doctor.pk])
    assert client.get(url).status_code == 200
    form = {
        "location": location.pk,
        "weekday": day.weekday(),
        "start": "14:00",
        "end": "16:00",
        "slot_minutes": "30",
        "breaks": "15:00–15:30",
    }
    bad = client.post(url, {**form, "breaks": "lunch"})
    assert bad.status_code == 200 and "13:00–14:00" in bad.content.decode()
    assert not WorkingHours.objects.exists()
    assert client.post(url, form).status_code == 302
    slots = availability.free_slots([doctor.pk], day, 1)[doctor.pk]
    assert [s.local_start().strftime("%H:%M") for s in slots] == ["14:00", "14:30", "15:30"]
    hours = WorkingHours.objects.get(doctor=doctor)
    edit = reverse("scheduling:staff_hours_edit", args=[doctor.pk, hours.pk])
    assert "15:00–15:30" in client.get(edit).content.decode()
    assert client.post(edit, {**form, "end": "15:00", "breaks": ""}).status_code == 302
    slots = availability.free_slots([doctor.pk], day, 1)[doctor.pk]
    assert [s.local_start().strftime("%H:%M") for s in slots] == ["14:00", "14:30"]
    delete = reverse("scheduling:staff_hours_delete", args=[doctor.pk, hours.pk])
    assert client.post(delete).status_code == 302
    assert not WorkingHours.objects.exists()


def test_time_off_over_bookings_lists_them_and_reception_may_cancel_them(
    client, login_staff, ekb, desk
):
    doctor, _location, ctype = ekb
    appointment = _book(doctor, ctype, 9)
    url = reverse("scheduling:staff_exceptions", args=[doctor.pk])
    form = {
        "kind": ExceptionKind.SICK,
        "date_from": f"{_tomorrow():%Y-%m-%d}",
        "date_until": f"{_tomorrow():%Y-%m-%d}",
        "reason": "flu",
    }
    login_staff(doctor)
    page = client.get(url).content.decode()
    assert "Cancel the affected appointments" not in page
    refused = client.post(url, form)
    html = refused.content.decode()
    assert refused.status_code == 409
    assert appointment.patient.full_name() in html
    assert "Ask reception to move or cancel it first" in html
    assert "Asia/Yekaterinburg (UTC+05:00)" in html
    assert not ScheduleException.objects.exists()
    client.post(reverse("account_logout"))

    login_staff(desk)
    refused = client.post(url, form)
    assert refused.status_code == 409
    assert "Cancel the affected appointments" in refused.content.decode()
    assert client.post(url, {**form, "cancel_affected": "on"}).status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    exception = ScheduleException.objects.get()
    # The whole day in the doctor's zone (Yekaterinburg).
    assert exception.during.lower == datetime.combine(_tomorrow(), time(0), tzinfo=EKB)
    assert exception.during.upper == datetime.combine(
        _tomorrow() + timedelta(days=1), time(0), tzinfo=EKB
    )
    listing = client.get(url).content.decode()
    assert "Sick day" in listing
    delete = reverse("scheduling:staff_exception_delete", args=[doctor.pk, exception.pk])
    assert client.post(delete).status_code == 302
    assert not ScheduleException.objects.exists()


def test_capacity_needs_a_reason(client, login_staff, ekb, desk):
    doctor, _location, _ctype = ekb
    login_staff(desk)
    url = reverse("scheduling:staff_capacity", args=[doctor.pk])
    form = {
        "day": f"{_tomorrow():%Y-%m-%d}",
        "time_from": "09:00",
        "time_until": "10:00",
        "capacity": "3",
    }
    refused = client.post(url, {**form, "reason": "   "})
    assert refused.status_code == 200 and "There is a problem" in refused.content.decode()
    assert not CapacityOverride.objects.exists()
    assert client.post(url, {**form, "reason": "flu jabs"}).status_code == 302
    override = CapacityOverride.objects.get()
    assert override.reason == "flu jabs" and override.created_by == desk
    assert override.during.lower == datetime.combine(_tomorrow(), time(9), tzinfo=EKB)
    assert "flu jabs" in client.get(url).content.decode()


# --- Reviews -----------------------------------------------------------------------------------


def test_reception_approves_and_rejects_reviews(client, login_staff, ekb, desk):
    doctor, _location, ctype = ekb
    reviews = []
    for hh, text in ((9, "Very attentive"), (10, "Rude")):
        appointment = _book(doctor, ctype, hh)
        Appointment.objects.filter(pk=appointment.pk).update(status=AppointmentStatus.COMPLETED)
        reviews.append(
            DoctorReview.objects.create(appointment=appointment, doctor=doctor, rating=5, text=text)
        )
    login_staff(desk)
    url = reverse("scheduling:staff_reviews")
    html = client.get(url).content.decode()
    assert "Very attentive" in html and "Rude" in html
    client.post(url, {"review": reviews[0].pk, "decision": "approve"})
    client.post(url, {"review": reviews[1].pk, "decision": "reject"})
    statuses = dict(DoctorReview.objects.values_list("text", "status"))
    assert statuses == {"Very attentive": "approved", "Rude": "rejected"}
    assert (
        AuditEvent.objects.filter(
            actor=desk, action=AuditAction.CHANGE, object_type="scheduling.doctorreview"
        ).count()
        == 2
    )
    # Already moderated: not found (recorded), nothing changes.
    assert client.post(url, {"review": reviews[1].pk, "decision": "approve"}).status_code == 404


def test_the_day_the_clocks_go_back_shows_both_half_past_ones(client, login_staff, desk):
    """Europe/London, 25 October 2026: 01:00–02:00 happens twice (BST, then GMT). The
    day is 25 hours long and each appointment names the offset it is in."""
    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

    london = factories.make_location(code="london", time_zone="Europe/London")
    doctor = factories.make_staff(Role.DOCTOR)
    doctor.staff_profile.location = london
    doctor.staff_profile.save()
    ctype = factories.make_consultation_type(doctor)
    utc = ZoneInfo("UTC")
    for hour, name in ((0, "Летняя"), (1, "Зимняя"), (23, "Поздняя")):
        start = datetime(2026, 10, 25, hour, 30, tzinfo=utc)
        Appointment.objects.create(
            patient=factories.make_patient(last_name=name).patient_profile,
            doctor=doctor,
            location=london,
            consultation_type=ctype,
            status=AppointmentStatus.BOOKED,
            during=DateTimeTZRange(start, start + timedelta(minutes=30)),
        )
    login_staff(desk)
    url = reverse("scheduling:staff_day", args=[doctor.pk])
    html = client.get(f"{url}?date=2026-10-25").content.decode()
    rows = html.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert len(rows) == 3
    # 00:30–01:00 UTC: starts in summer time, ends in winter time.
    assert "01:30–01:00" in rows[0] and "Europe/London (UTC+01:00 → UTC+00:00)" in rows[0]
    assert "Летняя" in rows[0]
    assert "01:30–02:00" in rows[1] and "Europe/London (UTC+00:00)" in rows[1]
    assert "Зимняя" in rows[1]
    assert "23:30–00:00" in rows[2] and "Поздняя" in rows[2]
    # The evening before (BST) is another day.
    before = client.get(f"{url}?date=2026-10-24").content.decode()
    assert "Летняя" not in before and "No appointments on this day." in before
