"""seed_demo builds the demo network once and is safe to run again."""

from __future__ import annotations

import io

import pytest
from allauth.mfa.models import Authenticator
from django.core.management import call_command

from accounts.models import Location, PatientProfile, Role, Specialty, StaffProfile, User

pytestmark = pytest.mark.django_db


def test_seed_demo_is_complete_and_idempotent(client):
    call_command("seed_demo", stdout=io.StringIO())
    counts = {role: User.objects.filter(role=role).count() for role in Role}
    assert counts == {
        Role.PATIENT: 40,
        Role.DOCTOR: 12,
        Role.NURSE: 1,
        Role.RECEPTION: 1,
        Role.ADMIN: 1,
    }
    assert Specialty.objects.count() == 6
    zones = set(Location.objects.values_list("time_zone", flat=True))
    assert len(zones) == 2
    assert (
        StaffProfile.objects.filter(user__role=Role.DOCTOR, specialty__isnull=False).count() == 12
    )
    # Every staff account can pass the MFA gate.
    staff = User.objects.exclude(role=Role.PATIENT)
    assert Authenticator.objects.filter(user__in=staff, type="totp").count() == staff.count()

    call_command("seed_demo", stdout=io.StringIO())
    assert User.objects.count() == sum(counts.values())
    assert PatientProfile.objects.count() == 40

    # The printed demo password opens a demo patient account.
    from django.conf import settings

    response = client.post(
        "/accounts/login/", {"login": "patient01@clinic.test", "password": settings.DEMO_PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_demo_totp_prints_a_code_that_signs_in(client):
    call_command("seed_demo", stdout=io.StringIO())
    from django.conf import settings

    client.post(
        "/accounts/login/", {"login": "doctor01@clinic.test", "password": settings.DEMO_PASSWORD}
    )
    from tests.conftest import wait_for_fresh_totp_window

    wait_for_fresh_totp_window()
    out = io.StringIO()
    call_command("demo_totp", "doctor01@clinic.test", stdout=out)
    code = out.getvalue().splitlines()[0].strip()
    response = client.post("/accounts/2fa/authenticate/", {"code": code})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
