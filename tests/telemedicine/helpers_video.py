"""Test data for video consultations: patients ready for video (telemedicine consent
given, identity verified, through accounts' services) and video appointments at any
time (rows made directly, so a test can put the start 10 minutes from now; one test
books through scheduling's service to check the booking hook)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.test import override_settings
from django.utils import timezone

from accounts import services as account_services
from accounts.models import ConsentKind, Role, VerificationMethod
from tests import factories

_passports = itertools.count(700_001)

KEY = "devkey"
SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123456789"  # noqa: S105
LIVEKIT = {"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET, "LIVEKIT_TOKEN_TTL_MINUTES": 10}
livekit_keys = override_settings(**LIVEKIT)


def ready_patient(*, consent: bool = True, verified: bool = True, reception=None):  # noqa: ANN001, ANN201
    """A patient with documents; with telemedicine consent and a verified identity unless
    told otherwise."""
    user = factories.make_patient(
        snils=factories.valid_snils(), passport=f"4611 {next(_passports):06d}"
    )
    profile = user.patient_profile
    if consent:
        account_services.consent_give(by=user, profile=profile, kind=ConsentKind.TELEMEDICINE)
    if verified:
        reception = reception or factories.make_staff(Role.RECEPTION)
        account_services.identity_verify(
            by=reception, profile=profile, method=VerificationMethod.IN_PERSON
        )
    user.refresh_from_db()
    return user


def video_type(doctor, *, mode: str = "video", minutes: int = 30):  # noqa: ANN001, ANN201
    return factories.make_consultation_type(
        doctor, mode=mode, duration_minutes=minutes, name_en="Video consultation"
    )


def make_appointment(
    patient,  # noqa: ANN001
    doctor,  # noqa: ANN001
    *,
    start: datetime | None = None,
    starts_in: timedelta = timedelta(minutes=10),
    minutes: int = 30,
    mode: str = "video",
    status: str = "booked",
):  # noqa: ANN201
    from accounts import services as accounts_services
    from scheduling.models import Appointment

    start = start or (timezone.now() + starts_in).replace(microsecond=0)
    ctype = video_type(doctor, mode=mode, minutes=minutes)
    appointment = Appointment.objects.create(
        patient=patient.patient_profile,
        doctor=doctor,
        location=factories.make_location(),
        consultation_type=ctype,
        during=DateTimeTZRange(start, start + timedelta(minutes=minutes), "[)"),
        status=status,
        price=ctype.price,
    )
    accounts_services.care_access_grant(
        by=None, doctor=doctor, patient=patient.patient_profile, reason="appointment"
    )
    return appointment


def verify_token(jwt: str):  # noqa: ANN201
    from livekit import api

    return api.TokenVerifier(KEY, SECRET).verify(jwt)


def sign_webhook(body: str, *, key: str = KEY, secret: str = SECRET) -> str:
    """The Authorization header LiveKit sends: a JWT with the body's sha256 (base64)."""
    import base64
    import hashlib

    from livekit import api

    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return api.AccessToken(key, secret).with_sha256(digest).with_ttl(timedelta(minutes=5)).to_jwt()


def webhook_body(
    event: str,
    *,
    event_id: str,
    room: str,
    identity: str = "",
    created_at: int | None = None,
) -> str:
    import json

    payload = {
        "event": event,
        "id": event_id,
        "createdAt": str(created_at or int(timezone.now().timestamp())),
        "room": {"sid": "RM_test", "name": room},
    }
    if identity:
        payload["participant"] = {"sid": f"PA_{identity}", "identity": identity, "name": "x"}
    return json.dumps(payload)
