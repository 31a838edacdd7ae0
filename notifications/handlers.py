"""Handlers on scheduling's hooks, registered by `NotificationsConfig.ready()`.

They run inside the scheduling service's transaction (`Hook.fire`): the reminder rows
are written atomically with the booking, cancellation or move, so a crash between the
commit and an on-commit callback cannot leave an appointment without its reminders.
They only write rows; nothing leaves the database here (the sweep enqueues the sends).
"""

from __future__ import annotations

from scheduling import hooks


def on_appointment_booked(*, appointment_id: int, **_kwargs: object) -> None:
    from notifications.services import reminders_schedule_for

    reminders_schedule_for(appointment_id=appointment_id)


def on_appointment_cancelled(*, appointment_id: int, **_kwargs: object) -> None:
    from notifications.services import reminders_revoke_for

    reminders_revoke_for(appointment_id=appointment_id)


def on_appointment_rescheduled(*, appointment_id: int, **_kwargs: object) -> None:
    from notifications.services import reminders_revoke_for, reminders_schedule_for

    reminders_revoke_for(appointment_id=appointment_id)
    reminders_schedule_for(appointment_id=appointment_id)


def connect() -> None:
    """Idempotent."""
    hooks.appointment_booked.register(on_appointment_booked)
    hooks.appointment_cancelled.register(on_appointment_cancelled)
    hooks.appointment_rescheduled.register(on_appointment_rescheduled)


def disconnect() -> None:
    hooks.appointment_booked.unregister(on_appointment_booked)
    hooks.appointment_cancelled.unregister(on_appointment_cancelled)
    hooks.appointment_rescheduled.unregister(on_appointment_rescheduled)
