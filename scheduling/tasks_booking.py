"""Booking tasks (confirmation email with .ics). Thin: take ids, load, call."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from scheduling.models import Appointment, AppointmentStatus

SENT_KEY = "scheduling:booking-confirmation-sent:{}"
SENT_TTL = 7 * 24 * 3600


@shared_task(
    name="scheduling.send_booking_confirmation",
    acks_late=True,
    max_retries=5,
    autoretry_for=(OSError,),
    retry_backoff=True,
)
def send_booking_confirmation(appointment_id: int) -> bool:
    """Email the patient their booking. Idempotent: sent once per appointment (a marker
    in the cache guards against a redelivered message); skipped if the appointment is
    gone or no longer booked."""
    from scheduling.emails import booking_confirmation_send

    appointment = (
        Appointment.objects.select_related("patient__user", "location")
        .filter(
            pk=appointment_id,
            status__in=(AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED),
        )
        .first()
    )
    if appointment is None:
        return False
    key = SENT_KEY.format(appointment_id)
    if not cache.add(key, 1, timeout=SENT_TTL):
        return False
    try:
        booking_confirmation_send(appointment=appointment)
    except Exception:
        cache.delete(key)  # let the retry send it
        raise
    return True
