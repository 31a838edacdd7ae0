"""Composing messages: subject, email body and SMS text in the recipient's language.

Only what DESIGN.md rule 6 allows goes in: the clinic, a date, a time with its zone, the
location's address and phone, and a link. Not the location's name: a centre named after
its specialty would say what the visit is about. The appointment's doctor, specialty, type of
visit and notes are never read here.
"""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, translation

from notifications.channels import Attachment, Outgoing
from notifications.texts import EVENT_TEXTS
from scheduling.models import Appointment

LANGUAGES = ("ru", "en")


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def appointment_facts(appointment: Appointment) -> dict[str, str]:
    location = appointment.location
    local = appointment.starts_at.astimezone(location.tzinfo)
    return {
        "date": formats.date_format(local, "l, j E Y"),
        "short_date": formats.date_format(local, "j E"),
        "time": local.strftime("%H:%M"),
        "zone": location.time_zone,
        "location_name": location.name,
        "address": location.address,
        "phone": location.phone,
    }


def reminder_message(
    appointment: Appointment, *, language: str, links: dict[str, str] | None = None
) -> Outgoing:
    links = links or {}
    with translation.override(language):
        context = {
            "clinic": settings.CLINIC_NAME,
            **appointment_facts(appointment),
            "link": absolute(reverse("scheduling:my_appointments")),
            "confirm_link": links.get("confirm", ""),
            "reschedule_link": links.get("reschedule", ""),
            "cancel_link": links.get("cancel", ""),
        }
        folder = "notifications/reminder"
        return Outgoing(
            subject=render_to_string(f"{folder}/subject_{language}.txt", context).strip(),
            body=render_to_string(f"{folder}/body_{language}.txt", context),
            sms_text=render_to_string(f"{folder}/sms_{language}.txt", context).strip(),
        )


def event_message(
    event: str,
    *,
    language: str,
    appointment: Appointment | None = None,
    link: str = "",
    attachments: tuple[Attachment, ...] = (),
) -> Outgoing:
    text = EVENT_TEXTS[event]
    with translation.override(language):
        names = {"clinic": settings.CLINIC_NAME}
        target = link or (absolute(reverse(text.page)) if text.page else "")
        context = {
            "clinic": settings.CLINIC_NAME,
            "line": str(text.line) % names,
            "link": target,
            "appointment": appointment_facts(appointment) if appointment else None,
            "calendar_attached": bool(attachments),
        }
        subject = str(text.subject) % names
        body = render_to_string("notifications/message/body.txt", context)
        sms = render_to_string("notifications/message/sms.txt", context)
    return Outgoing(
        subject=subject, body=body, sms_text=" ".join(sms.split()), attachments=attachments
    )
