"""Handlers on scheduling's and records' hooks, registered by `NotificationsConfig.ready()`.

Scheduling's run inside the scheduling service's transaction (`Hook.fire`): the reminder
and message rows are written atomically with the booking, cancellation or move, so a
crash between the commit and an on-commit callback cannot leave an appointment without
its reminders. Records' hooks fire on commit; their rows are written right after the
records change commits. They only write rows; sending happens after the commit (and in
the sweep).
"""

from __future__ import annotations

from records import hooks as records_hooks
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


# --- Records' events: each says only "open the portal" (DESIGN.md rule 6) -------------


def _tell(event: str, *, user_id: int, object_type: str, object_id: int, key: str) -> None:
    from notifications.services import notification_send

    notification_send(
        user_id=user_id, event=event, object_type=object_type, object_id=object_id, key=key
    )


def on_results_released(*, report_id: int, patient_user_id: int, **_kwargs: object) -> None:
    from notifications.models import Event

    _tell(
        Event.RESULTS_READY,
        user_id=patient_user_id,
        object_type="lab_report",
        object_id=report_id,
        key=f"results_ready:{report_id}",
    )


def on_visit_released(*, visit_id: int, patient_user_id: int, **_kwargs: object) -> None:
    from notifications.models import Event

    _tell(
        Event.VISIT_SUMMARY,
        user_id=patient_user_id,
        object_type="visit",
        object_id=visit_id,
        key=f"visit_summary:{visit_id}",
    )


def on_prescription_status_changed(
    *, renewal_id: int, patient_user_id: int, status: str, **_kwargs: object
) -> None:
    from notifications.models import Event

    _tell(
        Event.PRESCRIPTION_STATUS,
        user_id=patient_user_id,
        object_type="renewal",
        object_id=renewal_id,
        key=f"prescription_status:{renewal_id}:{status}",
    )


def on_document_ready(*, document_id: int, patient_user_id: int, **_kwargs: object) -> None:
    from notifications.models import Event

    _tell(
        Event.DOCUMENT_READY,
        user_id=patient_user_id,
        object_type="document",
        object_id=document_id,
        key=f"document_ready:{document_id}",
    )


def on_intake_form_reminder_due(
    *, appointment_id: int, patient_user_id: int, **_kwargs: object
) -> None:
    from notifications.models import Event

    _tell(
        Event.INTAKE_FORM,
        user_id=patient_user_id,
        object_type="appointment",
        object_id=appointment_id,
        key=f"intake_form:{appointment_id}",
    )


HANDLERS = (
    (hooks.appointment_booked, on_appointment_booked),
    (hooks.appointment_cancelled, on_appointment_cancelled),
    (hooks.appointment_rescheduled, on_appointment_rescheduled),
    (hooks.waitlist_offer_made, on_waitlist_offer_made),
    (hooks.appointment_page_sections, appointment_section),
    (records_hooks.results_released, on_results_released),
    (records_hooks.visit_released, on_visit_released),
    (records_hooks.prescription_status_changed, on_prescription_status_changed),
    (records_hooks.document_ready, on_document_ready),
    (records_hooks.intake_form_reminder_due, on_intake_form_reminder_due),
)


def connect() -> None:
    """Idempotent."""
    for hook, handler in HANDLERS:
        hook.register(handler)


def disconnect() -> None:
    for hook, handler in HANDLERS:
        hook.unregister(handler)
