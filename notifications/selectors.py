"""Reads of notification data."""

from __future__ import annotations

from django.db.models import QuerySet

from notifications.models import Reminder


def reminders_for_appointment(*, appointment_id: int) -> QuerySet[Reminder]:
    """Delivery state of an appointment's reminders (for the patient's appointment page
    and reception). The caller has already decided the user may see the appointment."""
    return Reminder.objects.filter(appointment_id=appointment_id).order_by("due_at", "channel")
