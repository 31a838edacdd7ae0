"""The booking confirmation email, with the appointment as an .ics attachment.

Emails leave the portal, so they carry no medical content (DESIGN.md rule 6): the date,
the time with its zone, the clinic's address and a link to "My appointments" — no
doctor, no specialty, no type of visit, no note.

`connect()` registers the handler on `scheduling.hooks.appointment_booked`; it is called
once from `SchedulingConfig.ready()`.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from scheduling import hooks
from scheduling.ics import appointment_ics, ics_filename
from scheduling.models import Appointment, AppointmentEventKind

logger = logging.getLogger(__name__)


def booking_confirmation_message(appointment: Appointment) -> EmailMessage:
    user = appointment.patient.user
    location = appointment.location
    local = appointment.starts_at.astimezone(location.tzinfo)
    sequence = appointment.events.filter(kind=AppointmentEventKind.MOVED).count()
    with translation.override(user.language):
        from django.utils import formats

        context = {
            "clinic": settings.CLINIC_NAME,
            "date": formats.date_format(local, "l, j E Y"),
            "time": local.strftime("%H:%M"),
            "zone": location.time_zone,
            "location_name": location.name,
            "address": location.address,
            "phone": location.phone,
            "link": settings.SITE_URL.rstrip("/") + reverse("scheduling:my_appointments"),
        }
        subject = _("Your appointment at %(clinic)s is booked") % {"clinic": settings.CLINIC_NAME}
        body = render_to_string("scheduling/email/booking_confirmation.txt", context)
    message = EmailMessage(subject=subject, body=body, to=[user.email])
    message.attach(
        ics_filename(appointment),
        appointment_ics(appointment, language=user.language, sequence=sequence),
        "text/calendar; charset=utf-8; method=PUBLISH",
    )
    return message


def booking_confirmation_send(*, appointment: Appointment) -> None:
    booking_confirmation_message(appointment).send()


def _enqueue_booking_confirmation(*, appointment_id: int, **_kwargs: object) -> None:
    """Handler of `appointment_booked`: queue the email once the booking commits.

    `robust=True`: if the broker is down, the booking (already committed) still answers
    normally; the failure is logged instead of turning the patient's page into an error.
    """
    from scheduling.tasks_booking import send_booking_confirmation

    def enqueue_booking_confirmation() -> None:
        send_booking_confirmation.delay(appointment_id)

    # A named function, not functools.partial: Django logs a robust callback's failure
    # by its __qualname__.
    transaction.on_commit(enqueue_booking_confirmation, robust=True)


def connect() -> None:
    """Register the email handlers on scheduling's hooks. Idempotent."""
    hooks.appointment_booked.register(_enqueue_booking_confirmation)


def disconnect() -> None:
    hooks.appointment_booked.unregister(_enqueue_booking_confirmation)
