"""Access-matrix rows for video consultations (loaded by tests/test_access_matrix.py).

A consultation's pages open for the appointment's patient and doctor only — never for
nurses, reception, administrators or another doctor, even one in charge of the patient
— and only once the patient has given telemedicine consent and had their identity
verified (both are arranged here for the world's patients). Action URLs (token,
recording consent, end) answer a GET from a participant with a redirect to the room;
nothing is minted or changed. The doctor's waiting list is for doctors. LiveKit's
webhook is authenticated by its signature, not a session (tests/telemedicine/
test_livekit_webhooks.py).
"""

from __future__ import annotations

from datetime import timedelta

from tests.test_access_matrix import Rule, only


def _ready(world: dict, user) -> None:  # noqa: ANN001
    """Telemedicine consent and a verified identity for a world patient, once."""
    from accounts import services
    from accounts.models import ConsentKind, VerificationMethod
    from tests import factories

    done = world.setdefault("video_ready", set())
    if user.pk in done:
        return
    profile = user.patient_profile
    if not profile.identity_documents_complete:
        services.patient_profile_update(
            by=user, profile=profile, snils=factories.valid_snils(), passport="4512 990001"
        )
    services.consent_give(by=user, profile=profile, kind=ConsentKind.TELEMEDICINE)
    services.identity_verify(
        by=world["actors"]["reception"],
        profile=user.patient_profile.__class__.objects.get(pk=profile.pk),
        method=VerificationMethod.IN_PERSON,
    )
    done.add(user.pk)


def _video(world: dict, role: str, target: str) -> list:
    """A video appointment of the target patient: "own" with the world's doctor (the
    role's own patient), "other" with a doctor nobody in the world is."""
    from django.utils import timezone

    from accounts.models import Role
    from tests import factories
    from tests.telemedicine.helpers_video import make_appointment

    made = world.setdefault("video", {})
    key = "other" if target == "other" else ("patient" if role == "patient" else "in_care")
    if key not in made:
        patient = world["other"] if target == "other" else world["own"][role]
        if target == "other":
            doctor = world.get("video_other_doctor") or factories.make_staff(Role.DOCTOR)
            world["video_other_doctor"] = doctor
        else:
            doctor = world["actors"]["doctor"]
        _ready(world, patient)
        start = (timezone.now() + timedelta(days=5, hours=len(made))).replace(
            minute=0, second=0, microsecond=0
        )
        made[key] = make_appointment(patient, doctor, start=start)
    return [made[key].public_id]


PARTICIPANTS = only("patient", "doctor")


def _consultation(**kwargs: object) -> Rule:
    return Rule(True, own=PARTICIPANTS, other=only(), args=_video, **kwargs)


MATRIX = {
    "telemedicine:video_room": _consultation(),
    "telemedicine:video_status": _consultation(),
    "telemedicine:video_token": _consultation(),
    "telemedicine:video_recording_consent": _consultation(),
    "telemedicine:video_end": _consultation(),
    "telemedicine:video_waiting_list": Rule(False, only("doctor")),
    "telemedicine:video_waiting_list_rows": Rule(False, only("doctor")),
}

NOT_PERSONAL = {"telemedicine:livekit_webhook"}
