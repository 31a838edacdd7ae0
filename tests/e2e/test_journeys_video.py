"""Browser journey of a video consultation's waiting room.

A patient with telemedicine consent and a verified identity opens the waiting room from
their appointment; the page POSTs for a room token, which verifies (livekit-api's
TokenVerifier) for exactly that consultation's room and the patient's identity. The
doctor, in a second browser, finds the patient waiting and opens the room; the patient's
page says "Doctor joined" without a reload. No LiveKit server runs here (LIVEKIT_URL is
empty): the page says video is not available and keeps working, with no console error.
"""

from __future__ import annotations

import copy
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from telemedicine.models import Consultation
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in, sign_in_staff
from tests.telemedicine.helpers_video import LIVEKIT, make_appointment, ready_patient, verify_token

# The waiting room polls every 5 s; leave room for a missed beat.
LIVE_TIMEOUT_MS = 15_000


def _english(user):
    user.language = "en"
    user.save(update_fields=["language"])
    return user


def _token_response(page, action):  # noqa: ANN001, ANN202
    with page.expect_response(
        lambda r: r.url.endswith("/token/") and r.request.method == "POST"
    ) as info:
        action()
    response = info.value
    assert response.status == 200
    assert "no-store" in response.headers["cache-control"]
    assert "/token/" in response.request.url and "eyJ" not in response.request.url
    return response.json()


def test_waiting_room_token_and_doctor_joined(live_server, page, new_page, console, settings):
    for name, value in LIVEKIT.items():
        setattr(settings, name, value)
    settings.LIVEKIT_URL = ""
    doctor = _english(factories.make_staff(Role.DOCTOR, full_name="Dr Vera Lind"))
    patient = _english(ready_patient())
    appointment = make_appointment(patient, doctor, starts_in=timedelta(minutes=5))

    # The patient opens the appointment and goes into the waiting room.
    sign_in(page, patient.email)
    page.goto(f"/appointments/{appointment.public_id}/")
    section = page.get_by_role("region", name="Video consultation")
    expect(section).to_be_visible()
    assert_accessible(page, "main")
    data = _token_response(
        page, lambda: section.get_by_role("link", name="Join video consultation").click()
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Video consultation")

    consultation = Consultation.objects.get(appointment=appointment)
    claims = verify_token(data["token"])
    assert claims.identity == str(patient.pk)
    assert claims.video.room == consultation.room_name
    assert claims.video.room_join is True and claims.video.room_admin is False
    assert data["media"] is False

    status = page.locator("#video-status")
    expect(status.locator("[data-video-state]")).to_have_text("Waiting for the doctor")
    expect(page.locator("#video-room")).to_have_attribute("data-token-state", "received")
    # No server to connect to: said in words, the page carries on.
    expect(page.get_by_role("alert").filter(has_text="Video is not available")).to_be_visible()
    expect(page.locator("#video-connection")).to_have_text(
        "In the waiting room (no video connection)"
    )
    expect(page.locator("#video-countdown")).to_have_text(re.compile(r"^Starts in \d+:\d\d$"))
    expect(page.get_by_text("This consultation is not recorded.")).to_be_visible()
    assert_accessible(page)
    page.evaluate("() => { window.__notReloaded = true; }")

    # The doctor sees the patient waiting and opens the room.
    desk = new_page()
    sign_in_staff(desk, doctor)
    desk.goto("/telemedicine/video/waiting/")
    row = desk.get_by_role("row").filter(has_text=patient.patient_profile.short_name())
    expect(row).to_contain_text("Patient waiting")
    assert_accessible(desk)
    doctor_data = _token_response(desk, lambda: row.get_by_role("link").click())
    doctor_claims = verify_token(doctor_data["token"])
    assert doctor_claims.identity == str(doctor.pk)
    assert doctor_claims.video.room == consultation.room_name
    expect(desk.get_by_role("button", name="End the consultation")).to_be_visible()
    assert_accessible(desk, {"exclude": [["#consult-context"]]})

    # The patient is told, in words and through the live region, without a reload.
    expect(status.locator("[data-video-state]")).to_have_text(
        "Doctor joined", timeout=LIVE_TIMEOUT_MS
    )
    live = page.locator("[aria-live='polite']").filter(has=page.locator("#video-status"))
    expect(live).to_contain_text("Your doctor has joined")
    assert page.evaluate("() => window.__notReloaded") is True
    assert_accessible(page)
    console.assert_clean()


def test_a_patient_without_consent_gets_no_room(live_server, page, settings):
    for name, value in LIVEKIT.items():
        setattr(settings, name, value)
    doctor = factories.make_staff(Role.DOCTOR)
    patient = _english(ready_patient(consent=False))
    appointment = make_appointment(patient, doctor, starts_in=timedelta(minutes=5))
    sign_in(page, patient.email)
    page.goto(f"/appointments/{appointment.public_id}/")
    section = page.get_by_role("region", name="Video consultation")
    expect(
        section.get_by_role("link", name="Give your consent to telemedicine consultations")
    ).to_be_visible()
    expect(section.get_by_role("link", name="Join video consultation")).to_have_count(0)
    assert_accessible(page, "main")
    response = page.goto(f"/telemedicine/video/{appointment.public_id}/")
    assert response is not None and response.status == 404


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.allow_console_errors  # the browser reports the refused connection; see below
def test_unreachable_video_server_leaves_a_working_page(live_server, page, console, settings):
    """livekit-client is loaded and tries LIVEKIT_URL; nothing listens there. The page
    says so in words, keeps the waiting room, and throws nothing uncaught."""
    for name, value in LIVEKIT.items():
        setattr(settings, name, value)
    port = _closed_port()
    settings.LIVEKIT_URL = f"ws://127.0.0.1:{port}"
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["connect-src"] = [
        *policy["DIRECTIVES"]["connect-src"],
        f"ws://127.0.0.1:{port}",
        f"http://127.0.0.1:{port}",
    ]
    settings.CONTENT_SECURITY_POLICY = policy
    doctor = factories.make_staff(Role.DOCTOR)
    patient = _english(ready_patient())
    appointment = make_appointment(patient, doctor, starts_in=timedelta(minutes=5))

    sign_in(page, patient.email)
    page.goto(f"/telemedicine/video/{appointment.public_id}/")
    notice = page.get_by_role("alert").filter(has_text="We could not reach the video server")
    expect(notice).to_be_visible(timeout=20_000)
    expect(page.locator("#video-connection")).to_have_text("Not connected")
    expect(page.locator("#video-status [data-video-state]")).to_have_text("Waiting for the doctor")
    expect(page.get_by_role("button", name="Turn camera off")).to_be_disabled()
    assert_accessible(page)
    # Only the refused connection itself is reported; no CSP violation, no page error.
    assert console.page_errors == []
    assert console.csp_violations == [] and page.evaluate("() => window.__cspViolations") == []
    assert console.errors, "the refused connection should have been tried"
    assert [e for e in console.errors if f"127.0.0.1:{port}" not in e] == []
