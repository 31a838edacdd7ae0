"""Access-matrix rows for secure messaging (loaded by tests/test_access_matrix.py).

The inbox and the new-thread form are the patient's; the queue is for reception, doctors
and nurses. A thread (its page, live part, reply, close, reopen, files) opens for its
patient and for the staff it is routed to: for each role the "own" thread is one routed
to them (reception: the in-care patient's billing thread; doctor and nurse: the same
patient's results thread, routed to the care team); staff actions (take, state, route)
are for staff only. The "other" thread is an unrelated patient's results thread, routed
to their own doctor's care team: nobody here sees it. Every refusal is a recorded 404
naming the patient. Action URLs answer a GET by leading back to the thread.
"""

from __future__ import annotations

from tests.test_access_matrix import Rule, only

THREAD_READERS = only("patient", "doctor", "nurse", "reception")
STAFF = only("doctor", "nurse", "reception")


def _threads(world: dict) -> dict:
    """Made once per world: a thread (with an attached file) per side."""
    if "message_threads" in world:
        return world["message_threads"]
    from telemedicine import services_messaging as services
    from telemedicine.models import Team, Topic
    from tests.telemedicine.test_messaging import png_upload

    actors = world["actors"]
    in_care = world["own"]["doctor"]
    unrelated = world["other"]

    def start(user, topic: str):  # noqa: ANN001, ANN202
        return services.thread_start(
            by=user,
            patient=user.patient_profile,
            topic=topic,
            subject="Вопрос",
            body="Текст сообщения",
            upload=png_upload(),
        )

    made = {
        "patient": start(actors["patient"], Topic.BILLING),
        "reception": start(in_care, Topic.BILLING),
        "care": start(in_care, Topic.RESULTS),
        "other": start(unrelated, Topic.RESULTS),
    }
    assert made["care"].team == made["other"].team == Team.CARE
    world["message_threads"] = made
    return made


def _side(role: str, target: str) -> str:
    if target == "other":
        return "other"
    return {"patient": "patient", "reception": "reception"}.get(role, "care")


def _thread(world: dict, role: str, target: str) -> list:
    return [_threads(world)[_side(role, target)].public_id]


def _attachment(world: dict, role: str, target: str) -> list:
    thread = _threads(world)[_side(role, target)]
    return [thread.messages.get().attachments.get().public_id]


MATRIX = {
    "telemedicine:inbox": Rule(False, only("patient")),
    "telemedicine:thread_new": Rule(False, only("patient")),
    "telemedicine:queue": Rule(False, STAFF),
    "telemedicine:thread": Rule(True, own=THREAD_READERS, other=only(), args=_thread),
    "telemedicine:thread_poll": Rule(True, own=THREAD_READERS, other=only(), args=_thread),
    "telemedicine:thread_reply": Rule(True, own=THREAD_READERS, other=only(), args=_thread),
    "telemedicine:thread_close": Rule(True, own=THREAD_READERS, other=only(), args=_thread),
    "telemedicine:thread_reopen": Rule(True, own=THREAD_READERS, other=only(), args=_thread),
    "telemedicine:thread_take": Rule(True, own=STAFF, other=only(), args=_thread),
    "telemedicine:thread_state": Rule(True, own=STAFF, other=only(), args=_thread),
    "telemedicine:thread_route": Rule(True, own=STAFF, other=only(), args=_thread),
    "telemedicine:attachment": Rule(True, own=THREAD_READERS, other=only(), args=_attachment),
}
