"""Access-matrix rows for the doctor's consultation screen (loaded by
tests/test_access_matrix.py).

The screen of a video appointment opens for that appointment's doctor only: the world's
doctor on the video appointment of the patient in their care ("own"); the patient (on
their own video appointment with that doctor), nurses, reception and administrators get
a recorded 404 naming the patient, and nobody opens another doctor's appointment with an
unrelated patient ("other"). The write URLs answer a GET with a redirect to the screen
for the doctor (their POSTs are tested in tests/telemedicine/test_consult.py).
"""

from __future__ import annotations

from tests.test_access_matrix import Rule, only


def _video_appointments(world: dict) -> dict:
    """Made once per world: a video appointment under way for each side. own[patient]:
    the patient's own with the world's doctor; own[staff]: the in-care patient's with
    that doctor; other: the unrelated patient's with another doctor."""
    if "consult" in world:
        return world["consult"]
    from tests.telemedicine.test_consult import video_appointment

    doctor = world["actors"]["doctor"]
    other_doctor = world["appointments"]["other"].doctor
    made = {
        "patient": video_appointment(doctor, world["own"]["patient"], minutes_from_now=60),
        "in_care": video_appointment(doctor, world["own"]["doctor"]),
        "other": video_appointment(other_doctor, world["other"]),
    }
    world["consult"] = made
    return made


def _appointment(world: dict, role: str, target: str) -> list:
    made = _video_appointments(world)
    if target == "other":
        return [made["other"].public_id]
    return [(made["patient"] if role == "patient" else made["in_care"]).public_id]


DOCTOR_ONLY = Rule(True, own=only("doctor"), other=only(), args=_appointment)

MATRIX = {
    "telemedicine:consult": DOCTOR_ONLY,
    "telemedicine:consult_panel": DOCTOR_ONLY,
    "telemedicine:consult_note": DOCTOR_ONLY,
    "telemedicine:consult_prescription": DOCTOR_ONLY,
    "telemedicine:consult_referral": DOCTOR_ONLY,
    "telemedicine:consult_summary": DOCTOR_ONLY,
}
