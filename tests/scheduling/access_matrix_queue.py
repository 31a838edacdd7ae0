"""Access-matrix rows for the live queue and the waitlist (loaded by
tests/test_access_matrix.py). Action URLs answer a GET from someone allowed with a
redirect to their page (nothing changes); anyone else gets 404, recorded."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tests.test_access_matrix import Rule, only


def _appointment(world: dict, role: str, target: str):  # noqa: ANN202
    return world["appointments"]["own"][role] if target == "own" else world["appointments"]["other"]


def _location_code(world: dict, role: str, target: str) -> list:
    return [world["appointments"]["other"].location.code]


def _check_in_args(world: dict, role: str, target: str) -> list:
    appointment = _appointment(world, role, target)
    return [appointment.location.code, appointment.public_id]


def _ticket_args(world: dict, role: str, target: str) -> list:
    """A walk-in ticket of the target patient in the appointment's doctor's queue."""
    from scheduling import queue

    appointment = _appointment(world, role, target)
    ticket = queue.queue_ticket_issue(
        by=world["actors"]["reception"],
        location=appointment.location,
        doctor=appointment.doctor,
        patient=appointment.patient,
    )
    return [ticket.pk, "call"]


def _entry(world: dict, role: str, target: str):  # noqa: ANN202
    from scheduling import waitlist

    appointment = _appointment(world, role, target)
    return waitlist.waitlist_join(
        by=appointment.patient.user,
        patient=appointment.patient,
        consultation_type=appointment.consultation_type,
        doctor=appointment.doctor,
        wanted_before=timezone.now() + timedelta(days=30),
    )


def _entry_args(world: dict, role: str, target: str) -> list:
    return [_entry(world, role, target).pk]


def _offer_args(world: dict, role: str, target: str) -> list:
    """An open offer to the target patient: a free slot of their doctor, four days on."""
    from scheduling import waitlist
    from scheduling.availability import free_slots

    entry = _entry(world, role, target)
    appointment = _appointment(world, role, target)
    day = timezone.now().date() + timedelta(days=4)
    slot = free_slots(
        [appointment.doctor_id], day, 1, consultation_type=appointment.consultation_type
    )[appointment.doctor_id][0]
    offer = waitlist.waitlist_offer_next(
        doctor_id=appointment.doctor_id,
        starts_at=slot.start,
        consultation_type=appointment.consultation_type,
    )
    assert offer is not None and offer.entry_id == entry.pk
    return [offer.pk]


STAFF_QUEUE = only("doctor", "reception", "admin")

MATRIX = {
    "scheduling:queue_me": Rule(False, only("patient")),
    "scheduling:queue_me_status": Rule(False, only("patient")),
    "scheduling:queue_staff_home": Rule(False, STAFF_QUEUE),
    "scheduling:queue_staff": Rule(False, STAFF_QUEUE, args=_location_code),
    "scheduling:queue_staff_list": Rule(False, STAFF_QUEUE, args=_location_code),
    "scheduling:queue_check_in": Rule(
        True,
        own=only("reception", "admin"),
        other=only("reception", "admin"),
        args=_check_in_args,
    ),
    # The doctor of the queue may act on its tickets; on another doctor's, nobody but
    # reception and administrators.
    "scheduling:queue_ticket_action": Rule(
        True, own=STAFF_QUEUE, other=only("reception", "admin"), args=_ticket_args
    ),
    "scheduling:waitlist": Rule(False, only("patient")),
    "scheduling:waitlist_cancel": Rule(True, own=only("patient"), other=only(), args=_entry_args),
    "scheduling:waitlist_offer_accept": Rule(
        True, own=only("patient"), other=only(), args=_offer_args
    ),
    "scheduling:waitlist_offer_decline": Rule(
        True, own=only("patient"), other=only(), args=_offer_args
    ),
}

# The waiting-room display shows ticket numbers only (no names, doctors or specialties):
# anyone may open it; tests/scheduling/test_queue.py checks that nothing else shows.
NOT_PERSONAL = {"scheduling:queue_display", "scheduling:queue_display_board"}
