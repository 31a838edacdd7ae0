"""Access-matrix rows for the patient booking pages (loaded by tests/test_access_matrix.py).

Browsing specialties and doctors is public (doctors are staff, not personal data). Every
page of an appointment takes its public UUID and opens only for the patient it belongs
to; staff and other patients get a recorded 404 (staff book through their own pages).
"""

from tests.test_access_matrix import Rule, only

NOT_PERSONAL = {
    "scheduling:book",
    "scheduling:book_specialty",
    "scheduling:doctor",
    "scheduling:doctor_slots",
}


def appointment_arg(world, role, target):  # noqa: ANN001, ANN201
    a = world["appointments"]["own"][role] if target == "own" else world["appointments"]["other"]
    return [a.public_id]


def _own_appointment() -> Rule:
    return Rule(True, own=only("patient"), other=only(), args=appointment_arg)


MATRIX = {
    "scheduling:book_confirm": Rule(False, only("patient")),
    "scheduling:my_appointments": Rule(False, only("patient")),
    "scheduling:appointment_detail": _own_appointment(),
    "scheduling:appointment_booked": _own_appointment(),
    "scheduling:appointment_payment": _own_appointment(),
    "scheduling:appointment_calendar": _own_appointment(),
    "scheduling:appointment_cancel": _own_appointment(),
    "scheduling:appointment_reschedule": _own_appointment(),
    "scheduling:appointment_reschedule_slots": _own_appointment(),
    "scheduling:appointment_review": _own_appointment(),
}
