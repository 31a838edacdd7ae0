"""No personal data in logs or error pages: a canary patient's details are used in every
journey, then searched for in everything the application and a real worker wrote."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from accounts import selectors, services
from accounts.models import Role
from tests import factories

ROOT = Path(__file__).resolve().parent.parent

CANARY = {
    "last_name": "Канареечкина",
    "first_name": "Зоряна",
    "phone": "+7 999 765-43-21",
    "address": "г. Тула, ул. Канареечная, д. 99",
    "insurance_policy": "7799887766554433",
}
# Later issues add a lab result value to the canary (records) and their journeys here.


def _canary_values(snils: str) -> list[str]:
    digits = "".join(ch for ch in snils if ch.isdigit())
    return [*CANARY.values(), snils, digits, "9997654321", "Zoryana"]


def _assert_clean(text: str, values: list[str], where: str) -> None:
    for value in values:
        assert value not in text, f"{value!r} leaked into {where}"


@pytest.fixture
def canary(db):
    snils = factories.valid_snils()
    user = factories.make_patient(
        first_name=CANARY["first_name"],
        last_name=CANARY["last_name"],
        phone=CANARY["phone"],
        address=CANARY["address"],
        insurance_policy=CANARY["insurance_policy"],
        snils=snils,
        passport="4510 909090",
    )
    user.snils_plain = snils
    return user


@pytest.mark.usefixtures("celery_eager")
def test_journeys_leave_no_personal_data_in_logs_or_error_pages(
    client, login_staff, canary, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    values = _canary_values(canary.snils_plain)
    pages: list[str] = []

    # The patient: pages, a form with bad input, a forbidden page.
    client.force_login(canary)
    for path in (
        "/",
        "/portal/me/details/",
        "/portal/me/identity/",
        "/portal/me/consents/",
        "/portal/me/access-log/",
        "/portal/staff/patients/",
    ):
        client.get(path)
    bad = client.post("/portal/me/identity/", {"snils": "123", "passport": "x"})
    assert bad.status_code == 200
    # An unexpected failure in the middle of a page with the canary loaded.
    monkeypatch.setattr(selectors, "consent_states_for", _explode)
    client.raise_request_exception = False
    crashed = client.get("/portal/me/consents/")
    assert crashed.status_code == 500
    pages.append(crashed.content.decode())
    client.raise_request_exception = True
    monkeypatch.undo()
    client.logout()

    # Staff: search by document, verify, department, break-glass, denials.
    reception = factories.make_staff(Role.RECEPTION)
    login_staff(reception)
    client.get("/portal/staff/patients/", {"query": canary.snils_plain})
    client.post(
        f"/portal/staff/patients/{canary.patient_profile.pk}/verify/", {"method": "in_person"}
    )
    client.get(f"/portal/staff/patients/{canary.patient_profile.pk}/")  # 404 for reception
    client.logout()
    doctor = factories.make_staff(Role.DOCTOR)
    doctor.staff_profile.department = None
    doctor.staff_profile.save()
    login_staff(doctor)
    client.post(
        f"/portal/staff/patients/{canary.patient_profile.pk}/break-glass/",
        {"reason": "Unconscious patient in the emergency room"},
    )
    pages.append(
        client.get(f"/portal/staff/patients/{canary.patient_profile.pk}/").content.decode()
    )
    client.logout()

    # Failed sign-ins with the canary's address (axes and allauth log these).
    for _ in range(3):
        client.post("/accounts/login/", {"login": canary.email, "password": "wrong-password-1"})

    assert pages[-1].count(CANARY["last_name"]) >= 1  # the journey did show the data
    _assert_clean(caplog.text, values, "application logs")
    _assert_clean(pages[0], values, "the 500 page")


def _explode(*args, **kwargs):
    raise RuntimeError("unexpected failure")


def _test_database_url() -> str:
    """The URL of the test database, for a worker process of our own."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


@pytest.mark.worker
def test_worker_logs_carry_no_personal_data(transactional_db, canary):
    from accounts.tasks import send_email_verification

    canary.email_verified_at = None
    canary.save(update_fields=["email_verified_at"])
    queue = f"hygiene-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DATABASE_URL": _test_database_url(),
        "EMAIL_URL": "consolemail://",
        "LOG_LEVEL": "DEBUG",
    }
    worker = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "clinic",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--hostname",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "DEBUG",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        result = send_email_verification.apply_async(args=[canary.pk], queue=queue)
        result.get(timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert "accounts.send_email_verification" in output and "succeeded" in output
    # The task really ran against the canary: the email went out (console backend).
    assert canary.email in output
    _assert_clean(output, _canary_values(canary.snils_plain), "the worker's log")


def test_services_never_log_document_numbers(canary, caplog, reception):
    caplog.set_level(logging.DEBUG)
    services.identity_verify(by=reception, profile=canary.patient_profile, method="in_person")
    selectors.patient_find(reception, canary.snils_plain)
    _assert_clean(caplog.text, _canary_values(canary.snils_plain), "service logs")
