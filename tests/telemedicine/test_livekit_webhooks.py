"""LiveKit's webhooks: signed by LiveKit (a JWT made with our key and secret carrying the
body's sha256), applied once per event id, driving the consultation's state and the
audit trail. Forged, unsigned or tampered deliveries are refused and change nothing.

The bodies are LiveKit's protocol JSON (livekit.protocol WebhookEvent, camelCase), the
header is made exactly as LiveKit's server makes it (AccessToken.with_sha256).
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from livekit import api

from audit.models import AuditEvent
from telemedicine.models import (
    ConsultationEndReason,
    ConsultationState,
    LiveKitWebhookEvent,
)
from telemedicine.services_video import consultation_ensure
from tests.telemedicine.helpers_video import (
    KEY,
    LIVEKIT,
    make_appointment,
    ready_patient,
    sign_webhook,
    webhook_body,
)

pytestmark = pytest.mark.django_db
URL = "/telemedicine/livekit/webhook/"


@pytest.fixture(autouse=True)
def _livekit_keys(settings):
    for name, value in LIVEKIT.items():
        setattr(settings, name, value)
    settings.LIVEKIT_URL = ""


@pytest.fixture
def consultation(doctor):
    appointment = make_appointment(ready_patient(), doctor)
    return consultation_ensure(appointment=appointment)


def _post(client, body: str, authorization: str | None):
    headers = {"content_type": "application/webhook+json"}
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    return client.post(URL, data=body, **headers)


def _deliver(client, event: str, consultation, *, event_id: str, who: str = "", at=None):
    identity = ""
    appointment = consultation.appointment
    if who == "patient":
        identity = str(appointment.patient.user_id)
    elif who == "doctor":
        identity = str(appointment.doctor_id)
    elif who:
        identity = who
    body = webhook_body(
        event,
        event_id=event_id,
        room=consultation.room_name,
        identity=identity,
        created_at=int(at.timestamp()) if at else None,
    )
    return _post(client, body, sign_webhook(body))


def test_url_is_reversible_and_needs_no_sign_in(client, consultation):
    assert reverse("telemedicine:livekit_webhook") == URL
    response = _deliver(client, "room_started", consultation, event_id="EV_1")
    assert response.status_code == 200
    consultation.refresh_from_db()
    assert consultation.room_sid == "RM_test"


def test_a_whole_consultation(client, consultation):
    t0 = timezone.now().replace(microsecond=0)
    steps = [
        ("room_started", "", ConsultationState.SCHEDULED),
        ("participant_joined", "patient", ConsultationState.WAITING),
        ("participant_joined", "doctor", ConsultationState.IN_PROGRESS),
        ("participant_left", "doctor", ConsultationState.WAITING),
        ("participant_joined", "doctor", ConsultationState.IN_PROGRESS),
        ("participant_left", "patient", ConsultationState.DOCTOR_JOINED),
        ("participant_left", "doctor", ConsultationState.IN_PROGRESS),
        ("room_finished", "", ConsultationState.ENDED),
    ]
    for n, (event, who, expected) in enumerate(steps):
        at = t0 + timedelta(seconds=n)
        response = _deliver(client, event, consultation, event_id=f"EV_{n}", who=who, at=at)
        assert response.status_code == 200, (event, who)
        consultation.refresh_from_db()
        assert consultation.state == expected, (n, event, who)
    assert consultation.started_at == t0 + timedelta(seconds=2)
    assert consultation.ended_at == t0 + timedelta(seconds=7)
    assert consultation.end_reason == ConsultationEndReason.ROOM_FINISHED
    assert LiveKitWebhookEvent.objects.filter(consultation=consultation, applied=True).count() == 8
    # The audit trail: one row per event, with the participant as actor where known.
    rows = AuditEvent.objects.filter(
        object_type="telemedicine.consultation",
        object_id=str(consultation.pk),
        detail__via="livekit_webhook",
    )
    assert rows.count() == 8
    doctor_joined = rows.filter(detail__event="participant_joined", detail__party="doctor")
    assert doctor_joined.count() == 2
    assert doctor_joined.first().actor_id == consultation.appointment.doctor_id
    assert all(r.patient_id == consultation.appointment.patient.user_id for r in rows)


def test_doctor_first_then_patient(client, consultation):
    _deliver(client, "participant_joined", consultation, event_id="A", who="doctor")
    consultation.refresh_from_db()
    assert consultation.state == ConsultationState.DOCTOR_JOINED
    _deliver(client, "participant_joined", consultation, event_id="B", who="patient")
    consultation.refresh_from_db()
    assert consultation.state == ConsultationState.IN_PROGRESS


def test_redelivery_is_applied_once(client, consultation):
    body = webhook_body(
        "participant_joined",
        event_id="EV_same",
        room=consultation.room_name,
        identity=str(consultation.appointment.patient.user_id),
    )
    header = sign_webhook(body)
    audit_before = AuditEvent.objects.count()
    assert _post(client, body, header).status_code == 200
    after_first = AuditEvent.objects.count()
    assert after_first == audit_before + 1
    # LiveKit retries: same id, same answer, nothing more happens.
    assert _post(client, body, header).status_code == 200
    assert AuditEvent.objects.count() == after_first
    assert LiveKitWebhookEvent.objects.filter(event_id="EV_same").count() == 1
    # Even a replay after the state moved on does not move it back.
    _deliver(client, "participant_left", consultation, event_id="EV_left", who="patient")
    consultation.refresh_from_db()
    state = consultation.state
    assert _post(client, body, header).status_code == 200
    consultation.refresh_from_db()
    assert consultation.state == state == ConsultationState.SCHEDULED


def _nothing_changed(consultation, before_state: str, events_before: int, audit_before: int):
    consultation.refresh_from_db()
    assert consultation.state == before_state
    assert LiveKitWebhookEvent.objects.count() == events_before
    assert AuditEvent.objects.count() == audit_before


def _joined_body(consultation) -> str:
    return webhook_body(
        "participant_joined",
        event_id="EV_attack",
        room=consultation.room_name,
        identity=str(consultation.appointment.doctor_id),
    )


@pytest.mark.parametrize(
    "forge",
    [
        "unsigned",
        "empty",
        "garbage",
        "wrong_secret",
        "wrong_key",
        "tampered_body",
        "no_sha256",
        "expired",
        "alg_none",
    ],
)
def test_forged_deliveries_are_refused_and_change_nothing(client, consultation, forge):
    body = _joined_body(consultation)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    sent = body
    header: str | None
    if forge == "unsigned":
        header = None
    elif forge == "empty":
        header = ""
    elif forge == "garbage":
        header = "not-a-jwt"
    elif forge == "wrong_secret":
        header = sign_webhook(body, secret="someone-elses-secret-someone-elses-secret-0000")
    elif forge == "wrong_key":
        header = sign_webhook(body, key="otherkey")
    elif forge == "tampered_body":
        header = sign_webhook(body)
        sent = body.replace("participant_joined", "room_finished")
    elif forge == "no_sha256":
        header = api.AccessToken(KEY, LIVEKIT["LIVEKIT_API_SECRET"]).to_jwt()
    elif forge == "expired":
        header = (
            api.AccessToken(KEY, LIVEKIT["LIVEKIT_API_SECRET"])
            .with_sha256(digest)
            .with_ttl(timedelta(minutes=-10))
            .to_jwt()
        )
    else:  # alg_none: an unsigned JWT claiming the right hash
        import jwt as pyjwt

        header = pyjwt.encode(
            {"iss": KEY, "sha256": digest, "exp": 9999999999}, key="", algorithm="none"
        )
    state = consultation.state
    events, audit = LiveKitWebhookEvent.objects.count(), AuditEvent.objects.count()

    response = _post(client, sent, header)

    assert response.status_code == 401
    _nothing_changed(consultation, state, events, audit)


def test_signed_but_not_an_event_is_400(client, consultation):
    body = "{this is not json"
    state = consultation.state
    events, audit = LiveKitWebhookEvent.objects.count(), AuditEvent.objects.count()
    response = _post(client, body, sign_webhook(body))
    assert response.status_code == 400
    _nothing_changed(consultation, state, events, audit)


def test_signed_event_without_id_is_400(client, consultation):
    body = json.dumps({"event": "room_finished", "room": {"name": consultation.room_name}})
    state = consultation.state
    response = _post(client, body, sign_webhook(body))
    assert response.status_code == 400
    consultation.refresh_from_db()
    assert consultation.state == state


def test_get_is_not_allowed(client):
    assert client.get(URL).status_code == 405


def test_not_configured_answers_503(client, consultation, settings):
    settings.LIVEKIT_API_SECRET = ""
    body = _joined_body(consultation)
    assert _post(client, body, "anything").status_code == 503


def test_other_rooms_are_stored_and_ignored(client, consultation):
    body = webhook_body("room_finished", event_id="EV_other", room="someone-elses-room")
    assert _post(client, body, sign_webhook(body)).status_code == 200
    row = LiveKitWebhookEvent.objects.get(event_id="EV_other")
    assert row.consultation is None and row.applied is False
    consultation.refresh_from_db()
    assert consultation.state == ConsultationState.SCHEDULED


def test_unknown_participant_changes_no_presence_but_is_recorded(client, consultation):
    _deliver(client, "participant_joined", consultation, event_id="EV_x", who="999999")
    consultation.refresh_from_db()
    assert consultation.state == ConsultationState.SCHEDULED
    assert not consultation.patient_connected and not consultation.doctor_connected
    row = AuditEvent.objects.filter(detail__event_id="EV_x").get()
    assert row.detail["unknown_identity"] == "999999" and row.actor_id is None


def test_room_finished_lets_them_back_in_within_the_window(client, consultation):
    _deliver(client, "room_finished", consultation, event_id="EV_fin")
    consultation.refresh_from_db()
    assert consultation.state == ConsultationState.ENDED
    patient = consultation.appointment.patient.user
    client.force_login(patient)
    response = client.post(
        reverse("telemedicine:video_token", args=[consultation.appointment.public_id])
    )
    assert response.status_code == 200 and response.json()["token"]
    consultation.refresh_from_db()
    assert consultation.state == ConsultationState.WAITING


def test_after_the_doctor_ended_webhooks_do_not_reopen(client, consultation):
    from telemedicine.services_video import consultation_end

    consultation_end(by=consultation.appointment.doctor, appointment=consultation.appointment)
    _deliver(client, "participant_joined", consultation, event_id="EV_late", who="patient")
    consultation.refresh_from_db()
    assert consultation.state == ConsultationState.ENDED
    assert consultation.end_reason == ConsultationEndReason.DOCTOR
