"""Who reaches which staff schedule page, beyond the access matrix: a doctor never
another doctor's calendar (404, recorded), reception any, nurses their department's
days read-only, patients none of it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.urls import reverse
from django.utils import timezone

from accounts.models import Department, Role
from audit.models import AuditAction, AuditEvent
from scheduling.models import ExceptionKind, ScheduleException, WorkingHours
from tests import factories

pytestmark = pytest.mark.django_db

CALENDAR_PAGES = (
    "scheduling:staff_day",
    "scheduling:staff_week",
    "scheduling:staff_hours",
    "scheduling:staff_exceptions",
    "scheduling:staff_hours_edit",
    "scheduling:staff_hours_delete",
    "scheduling:staff_exception_delete",
    "scheduling:staff_capacity",
    "scheduling:staff_book",
)


@pytest.fixture
def two_doctors(db):
    mine = factories.make_staff(Role.DOCTOR)
    theirs = factories.make_staff(Role.DOCTOR)
    for doctor in (mine, theirs):
        factories.make_working_week(doctor, weekdays=[0])
        start = timezone.now() + timedelta(days=20)
        ScheduleException.objects.create(
            doctor=doctor,
            kind=ExceptionKind.BLOCKED,
            during=DateTimeTZRange(start, start + timedelta(hours=1)),
        )
    return mine, theirs


def _args(name, doctor):
    if name.endswith("hours_edit") or name.endswith("hours_delete"):
        return [doctor.pk, WorkingHours.objects.filter(doctor=doctor).first().pk]
    if name.endswith("exception_delete"):
        return [doctor.pk, ScheduleException.objects.filter(doctor=doctor).first().pk]
    return [doctor.pk]


@pytest.mark.parametrize("name", CALENDAR_PAGES)
def test_a_doctor_cannot_open_another_doctors_calendar(client, login_staff, two_doctors, name):
    mine, theirs = two_doctors
    login_staff(mine)
    before = AuditEvent.objects.filter(actor=mine, action=AuditAction.DENIED).count()
    for method in (client.get, client.post):
        response = method(reverse(name, args=_args(name, theirs)))
        assert response.status_code == 404
    denials = AuditEvent.objects.filter(actor=mine, action=AuditAction.DENIED)
    assert denials.count() >= before + 2
    # Nothing of theirs changed.
    assert WorkingHours.objects.filter(doctor=theirs).exists()
    assert ScheduleException.objects.filter(doctor=theirs).exists()


def test_the_denial_names_the_calendar_asked_for(client, login_staff, two_doctors):
    mine, theirs = two_doctors
    login_staff(mine)
    client.get(reverse("scheduling:staff_day", args=[theirs.pk]))
    denial = AuditEvent.objects.filter(actor=mine, action=AuditAction.DENIED).latest("seq")
    assert denial.detail["what"] == "calendar" and denial.detail["doctor"] == theirs.pk


@pytest.mark.parametrize("name", CALENDAR_PAGES)
def test_reception_opens_any_doctors_calendar(client, login_staff, two_doctors, reception, name):
    _mine, theirs = two_doctors
    login_staff(reception)
    response = client.get(reverse(name, args=_args(name, theirs)))
    assert response.status_code in (200, 302)


def test_missing_and_forbidden_doctors_look_the_same(client, login_staff, two_doctors):
    mine, theirs = two_doctors
    login_staff(mine)
    forbidden = client.get(reverse("scheduling:staff_week", args=[theirs.pk]))
    missing = client.get(reverse("scheduling:staff_week", args=[987654]))
    not_a_doctor = client.get(reverse("scheduling:staff_week", args=[factories.make_patient().pk]))
    assert forbidden.status_code == missing.status_code == not_a_doctor.status_code == 404


def test_nurses_see_their_departments_days_only(client, login_staff, two_doctors):
    mine, theirs = two_doctors
    nurse = factories.make_staff(Role.NURSE)
    elsewhere = Department.objects.create(
        code="cardio", name="Cardiology", location=factories.make_location()
    )
    theirs.staff_profile.department = elsewhere
    theirs.staff_profile.save()
    login_staff(nurse)
    assert client.get(reverse("scheduling:staff_day", args=[mine.pk])).status_code == 200
    assert client.get(reverse("scheduling:staff_week", args=[mine.pk])).status_code == 200
    assert client.get(reverse("scheduling:staff_day", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("scheduling:staff_hours", args=[mine.pk])).status_code == 404


def test_patients_never_reach_staff_pages(client, two_doctors, patient):
    mine, _theirs = two_doctors
    client.force_login(patient)
    for url in (
        reverse("scheduling:staff_schedule"),
        reverse("scheduling:staff_reviews"),
        reverse("scheduling:staff_day", args=[mine.pk]),
        reverse("scheduling:staff_book_patient", args=[mine.pk, patient.patient_profile.pk]),
    ):
        assert client.get(url).status_code == 404, url
    assert AuditEvent.objects.filter(actor=patient, action=AuditAction.DENIED).count() == 4
