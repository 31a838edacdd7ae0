"""Handlers on scheduling's hooks, registered by `NotificationsConfig.ready()`.

They run inside the scheduling service's transaction (`Hook.fire`): the reminder and
message rows are written atomically with the booking, cancellation or move, so a crash
between the commit and an on-commit callback cannot leave an appointment without its
reminders. They only write rows; sending happens after the commit (and in the sweep).
"""

from __future__ import annotations

from scheduling import hooks


def _patient_user_id(appointment_id: int) -> int | None:
    from scheduling.models import Appointment

    return (
        Appointment.objects.filter(pk=appointment_id)
        .values_list("patient__user_id", flat=True)
        .first()
    )


def on_appointment_booked(*, appointment_id: int, **_kwargs: object) -> None:
    from notifications.models import Event
    from notifications.services import notification_send, reminders_schedule_for

    reminders_schedule_for(appointment_id=appointment_id)
    notification_send(
        user_id=_patient_user_id(appointment_id),
        event=Event.BOOKING_CONFIRMED,
        object_type="appointment",
        object_id=appointment_id,
    )


def on_appointment_cancelled(
    *, appointment_id: int, by_clinic: bool = False, **_kwargs: object
) -> None:
    from notifications.models import Event
    from notifications.services import notification_send, reminders_revoke_for

    reminders_revoke_for(appointment_id=appointment_id)
    if by_clinic:
        # A patient who cancelled saw it happen; a cancellation by the clinic must reach
        # them even if they never open the portal.
        notification_send(
            user_id=_patient_user_id(appointment_id),
            event=Event.APPOINTMENT_CANCELLED,
            object_type="appointment",
            object_id=appointment_id,
        )


def on_appointment_rescheduled(*, appointment_id: int, **_kwargs: object) -> None:
    from notifications.models import Event
    from notifications.services import (
        notification_send,
        reminders_revoke_for,
        reminders_schedule_for,
    )
    from scheduling.models import Appointment

    reminders_revoke_for(appointment_id=appointment_id)
    reminders_schedule_for(appointment_id=appointment_id)
    start = Appointment.objects.filter(pk=appointment_id).values_list("during", flat=True).first()
    notification_send(
        user_id=_patient_user_id(appointment_id),
        event=Event.APPOINTMENT_MOVED,
        object_type="appointment",
        object_id=appointment_id,
        # One message per new time: moving twice tells the patient twice.
        key=f"appointment_moved:{appointment_id}:{start.lower.timestamp():.0f}",
    )


def on_waitlist_offer_made(*, offer_id: int, **_kwargs: object) -> None:
    from notifications.models import Event
    from notifications.services import notification_send
    from scheduling.models import WaitlistOffer

    offer = (
        WaitlistOffer.objects.filter(pk=offer_id)
        .values("appointment_id", "entry__patient__user_id")
        .first()
    )
    if offer is None:
        return
    notification_send(
        user_id=offer["entry__patient__user_id"],
        event=Event.WAITLIST_OFFER,
        object_type="appointment",
        object_id=offer["appointment_id"],
        key=f"waitlist_offer:{offer_id}",
    )


def appointment_section(*, user, appointment, audience: str) -> str:  # noqa: ANN001
    """The delivery state of the appointment's reminders and messages, for the patient's
    appointment page and the staff appointment page."""
    from django.template.loader import render_to_string

    from notifications.selectors import deliveries_for_appointment

    rows = deliveries_for_appointment(appointment=appointment)
    from notifications.forms import FollowUpForm

    follow_up = audience == "staff" and appointment.status == "completed"
    return render_to_string(
        "notifications/_deliveries.html",
        {
            "deliveries": rows,
            "audience": audience,
            "zone": appointment.location.tzinfo,
            "appointment": appointment,
            "follow_up_form": FollowUpForm() if follow_up else None,
        },
    )


HANDLERS = (
    (hooks.appointment_booked, on_appointment_booked),
    (hooks.appointment_cancelled, on_appointment_cancelled),
    (hooks.appointment_rescheduled, on_appointment_rescheduled),
    (hooks.waitlist_offer_made, on_waitlist_offer_made),
    (hooks.appointment_page_sections, appointment_section),
)


def connect() -> None:
    """Idempotent."""
    for hook, handler in HANDLERS:
        hook.register(handler)


def disconnect() -> None:
    for hook, handler in HANDLERS:
        hook.unregister(handler)
