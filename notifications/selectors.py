"""Reads of notification data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from notifications.models import ActionLink, Message, Reminder


def reminders_for_appointment(*, appointment_id: int) -> QuerySet[Reminder]:
    """Delivery state of an appointment's reminders. The caller has already decided the
    user may see the appointment."""
    return Reminder.objects.filter(appointment_id=appointment_id).order_by("due_at", "channel")


@dataclass(frozen=True)
class DeliveryRow:
    what: str
    channel: str
    state: str
    state_label: str
    due_at: datetime
    sent_at: datetime | None
    sent_channel: str
    attempts: int
    last_error: str


def deliveries_for_appointment(*, appointment) -> list[DeliveryRow]:  # noqa: ANN001
    """Reminders and messages about one appointment, oldest due first: what the patient
    and reception see on the appointment's page. Two queries whatever the history."""
    rows = []
    for reminder in reminders_for_appointment(appointment_id=appointment.pk):
        hours = reminder.kind.removesuffix("h")
        rows.append(_row(reminder, _("Reminder %(hours)s h before") % {"hours": hours}))
    messages = Message.objects.filter(object_type="appointment", object_id=appointment.pk)
    for message in messages:
        rows.append(_row(message, message.get_event_display()))
    return sorted(rows, key=lambda row: (row.due_at, row.channel))


def _row(delivery, what) -> DeliveryRow:  # noqa: ANN001
    return DeliveryRow(
        what=str(what),
        channel=delivery.get_channel_display(),
        state=delivery.state,
        state_label=delivery.get_state_display(),
        due_at=delivery.due_at,
        sent_at=delivery.sent_at,
        sent_channel=delivery.get_sent_channel_display() if delivery.sent_channel else "",
        attempts=delivery.attempts,
        last_error=delivery.last_error,
    )


def action_links_for_appointment(*, appointment_id: int) -> QuerySet[ActionLink]:
    return ActionLink.objects.filter(appointment_id=appointment_id)
