"""Who gets a room token for a video consultation, and what is in it.

A token only for the appointment's patient and doctor, only from 15 minutes before the
start to 30 minutes after the planned end, only after the patient's telemedicine consent
and verified identity; everyone and everything else gets a 404 and a DENIED audit row.
Tokens are checked with livekit-api's own TokenVerifier.
"""

from __future__ import annotations

import json
from datetime import timedelta

import jwt as pyjwt
import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import policies
from accounts import services as account_services
from accounts.models import ConsentKind, Role
from audit.models import AuditAction, AuditEvent
from telemedicine.models import Consultation, ConsultationState
from telemedicine.services_video import consultation_ensure
from tests import factories
from tests.telemedicine.helpers_video import (
    KEY,
    LIVEKIT,
    SECRET,
    make_appointment,
    ready_patient,
    verify_token,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _livekit_keys(settings):
    for name, value in LIVEKIT.items():
        setattr(settings, name, value)
    settings.LIVEKIT_URL = ""


@pytest.fixture
def video(doctor):
    patient = ready_patient()
    return make_appointment(patient, doctor)


def _token_url(appointment) -> str:
    return reverse("telemedicine:video_token", args=[appointment.public_id])


def _post_token(client, user, appointment):
    client.force_login(user)
    return client.post(_token_url(appointment))


def _denials(user, appointment=None) -> int:
    rows = AuditEvent.objects.filter(actor=user, action=AuditAction.DENIED)
    if appointment is not None:
        rows = rows.filter(patient=appointment.patient.user)
    return rows.count()


def assert_refused(client, user, appointment, reason: str) -> None:
    before = _denials(user, appointment)
    response = _post_token(client, user, appointment)
    assert response.status_code == 404
    assert b"eyJ" not in response.content  # no JWT of any kind in the answer
    assert _denials(user, appointment) == before + 1
    denial = AuditEvent.objects.filter(actor=user, action=AuditAction.DENIED).order_by("-seq")[0]
    assert denial.detail["what"] == "video_token"
    assert denial.detail["reason"] == reason
    assert denial.object_type == "scheduling.appointment"
    assert denial.object_id == str(appointment.pk)


# --- The token itself ------------------------------------------------------------------------


def test_patient_gets_a_short_token_for_exactly_their_room(client, video):
    patient = video.patient.user
    response = _post_token(client, patient, video)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    data = response.json()
    consultation = Consultation.objects.get(appointment=video)
    claims = verify_token(data["token"])
    assert claims.identity == str(patient.pk)
    assert claims.name == patient.patient_profile.short_name()
    grants = claims.video
    assert grants.room == consultation.room_name
    assert grants.room_join is True
    assert grants.can_publish is True and grants.can_subscribe is True
    assert grants.can_publish_data is True
    assert grants.room_admin is False
    assert grants.room_create is False
    assert not grants.room_list and not grants.room_record
    raw = pyjwt.decode(data["token"], SECRET, algorithms=["HS256"], issuer=KEY)
    lifetime = raw["exp"] - raw["nbf"]
    assert 0 < lifetime <= 15 * 60
    assert raw["exp"] <= timezone.now().timestamp() + 15 * 60 + 1
    # The room name is random, unrelated to the appointment's ids; never in a URL.
    assert str(video.public_id) not in consultation.room_name
    assert str(video.pk) != consultation.room_name.rsplit("-", 1)[-1]
    assert len(consultation.room_name) >= 30
    assert data["media"] is False  # LIVEKIT_URL is empty: no connection attempted


def test_token_verifies_only_with_our_secret(client, video):
    data = _post_token(client, video.patient.user, video).json()
    from livekit import api

    with pytest.raises(pyjwt.InvalidSignatureError):
        api.TokenVerifier(KEY, "another-secret-another-secret-another-secret").verify(data["token"])


def test_ttl_never_exceeds_15_minutes_whatever_the_setting(client, video, settings):
    settings.LIVEKIT_TOKEN_TTL_MINUTES = 600
    data = _post_token(client, video.patient.user, video).json()
    raw = pyjwt.decode(data["token"], SECRET, algorithms=["HS256"], issuer=KEY)
    assert raw["exp"] - raw["nbf"] <= 15 * 60


def test_doctor_gets_their_own_identity_in_the_same_room(client, video):
    patient_token = _post_token(client, video.patient.user, video).json()["token"]
    doctor_token = _post_token(client, video.doctor, video).json()["token"]
    patient_claims, doctor_claims = verify_token(patient_token), verify_token(doctor_token)
    assert doctor_claims.identity == str(video.doctor.pk)
    assert doctor_claims.video.room == patient_claims.video.room
    assert doctor_claims.video.room_admin is False


def test_each_room_is_different_and_unguessable(client, doctor):
    a = make_appointment(ready_patient(), doctor)
    b = make_appointment(ready_patient(), doctor, starts_in=timedelta(hours=3))
    room_a = verify_token(_post_token(client, a.patient.user, a).json()["token"]).video.room
    ca, cb = Consultation.objects.get(appointment=a), consultation_ensure(appointment=b)
    assert room_a == ca.room_name != cb.room_name


def test_get_mints_nothing(client, video):
    client.force_login(video.patient.user)
    response = client.get(_token_url(video))
    assert response.status_code == 302
    assert response["Location"] == reverse("telemedicine:video_room", args=[video.public_id])
    assert not Consultation.objects.filter(
        appointment=video, state=ConsultationState.WAITING
    ).exists()


def test_token_requires_csrf(video):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(video.patient.user)
    assert csrf_client.post(_token_url(video)).status_code == 403


def test_anonymous_is_sent_to_sign_in(client, video):
    response = client.post(_token_url(video))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_join_is_audited_and_moves_the_waiting_room(client, video):
    _post_token(client, video.patient.user, video)
    consultation = Consultation.objects.get(appointment=video)
    assert consultation.state == ConsultationState.WAITING
    assert consultation.patient_joined_at is not None
    event = AuditEvent.objects.filter(
        actor=video.patient.user, object_type="telemedicine.consultation"
    ).latest("seq")
    assert event.detail["what"] == "video_token" and event.detail["token_minted"] is True
    assert event.patient == video.patient.user
    _post_token(client, video.doctor, video)
    consultation.refresh_from_db()
    assert consultation.state == ConsultationState.DOCTOR_JOINED
    assert consultation.doctor_joined_at is not None


def test_without_keys_the_waiting_room_still_works_but_no_token(client, video, settings):
    settings.LIVEKIT_API_KEY = settings.LIVEKIT_API_SECRET = ""
    data = _post_token(client, video.patient.user, video).json()
    assert data["token"] is None and data["media"] is False and data["message"]
    assert Consultation.objects.get(appointment=video).state == ConsultationState.WAITING


# --- The window, both sides, with the clock held --------------------------------------------


@pytest.mark.parametrize(
    ("offset", "allowed", "reason"),
    [
        (-timedelta(minutes=15, seconds=1), False, "too_early"),
        (-timedelta(minutes=15), True, ""),
        (timedelta(minutes=30 + 30), True, ""),  # 30 minutes after the planned end
        (timedelta(minutes=30 + 30, seconds=1), False, "too_late"),
    ],
)
def test_window_edges(client, doctor, monkeypatch, offset, allowed, reason):
    start = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    appointment = make_appointment(ready_patient(), doctor, start=start, minutes=30)
    frozen = start + offset
    monkeypatch.setattr(timezone, "now", lambda: frozen)
    for user in (appointment.patient.user, appointment.doctor):
        if allowed:
            assert _post_token(client, user, appointment).status_code == 200
        else:
            assert_refused(client, user, appointment, reason)


def test_policy_window_is_pure_and_explicit(doctor):
    start = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    appointment = make_appointment(ready_patient(), doctor, start=start, minutes=20)
    patient = appointment.patient.user
    opens, closes = policies.video_join_window(appointment)
    assert opens == start - timedelta(minutes=15)
    assert closes == start + timedelta(minutes=20 + 30)
    assert policies.can_join_consultation(patient, appointment, now=opens)
    assert not policies.can_join_consultation(
        patient, appointment, now=opens - timedelta(seconds=1)
    )
    assert policies.can_join_consultation(doctor, appointment, now=closes)
    assert not policies.can_join_consultation(
        doctor, appointment, now=closes + timedelta(seconds=1)
    )


# --- Everyone and everything else --------------------------------------------------------------


def test_refused_without_telemedicine_consent(client, doctor):
    appointment = make_appointment(ready_patient(consent=False), doctor)
    assert_refused(client, appointment.patient.user, appointment, "no_telemedicine_consent")
    assert_refused(client, doctor, appointment, "no_telemedicine_consent")


def test_refused_after_consent_is_withdrawn(client, video):
    patient = video.patient.user
    account_services.consent_withdraw(
        by=patient, profile=patient.patient_profile, kind=ConsentKind.TELEMEDICINE
    )
    assert_refused(client, patient, video, "no_telemedicine_consent")


def test_refused_without_verified_identity(client, doctor):
    appointment = make_appointment(ready_patient(verified=False), doctor)
    assert_refused(client, appointment.patient.user, appointment, "identity_not_verified")
    assert_refused(client, doctor, appointment, "identity_not_verified")


def test_refused_for_another_patient(client, video):
    intruder = ready_patient()
    # Even one with their own video appointment with the same doctor at the same time.
    make_appointment(intruder, video.doctor, starts_in=timedelta(minutes=50))
    assert_refused(client, intruder, video, "not_a_participant")


def test_refused_for_another_doctor_even_with_care_access(client, video):
    other = factories.make_staff(Role.DOCTOR)
    account_services.care_access_grant(
        by=None, doctor=other, patient=video.patient, reason="another appointment"
    )
    assert_refused(client, other, video, "not_a_participant")


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.NURSE, Role.ADMIN])
def test_refused_for_other_staff(client, video, role):
    assert_refused(client, factories.make_staff(role), video, "not_a_participant")


def test_refused_for_a_cancelled_appointment(client, video):
    from scheduling import services as scheduling

    scheduling.appointment_cancel(by=video.patient.user, appointment=video, reason="")
    video.refresh_from_db()
    assert video.status == "cancelled"
    assert_refused(client, video.patient.user, video, "status_cancelled")
    assert_refused(client, video.doctor, video, "status_cancelled")


def test_refused_for_an_in_person_appointment(client, doctor):
    appointment = make_appointment(ready_patient(), doctor, mode="in_person")
    assert_refused(client, appointment.patient.user, appointment, "not_video")


def test_unknown_appointment_is_the_same_404(client, video):
    import uuid

    client.force_login(video.patient.user)
    before = _denials(video.patient.user)
    response = client.post(reverse("telemedicine:video_token", args=[uuid.uuid4()]))
    assert response.status_code == 404
    assert _denials(video.patient.user) == before + 1


def test_ended_by_the_doctor_mints_no_more_tokens(client, video):
    client.force_login(video.doctor)
    client.post(reverse("telemedicine:video_end", args=[video.public_id]))
    response = _post_token(client, video.patient.user, video)
    assert response.status_code == 409
    assert response.json()["token"] is None
    assert "no-store" in response["Cache-Control"]


def test_token_json_has_nothing_personal_but_the_token(client, video):
    data = _post_token(client, video.patient.user, video).json()
    text = json.dumps({k: v for k, v in data.items() if k != "token"})
    assert video.patient.last_name not in text
    assert str(video.public_id) not in text
