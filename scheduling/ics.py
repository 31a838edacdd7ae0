"""An appointment as an iCalendar file (RFC 5545) for the patient's own calendar.

Calendars sync to phones and cloud services outside the portal, so the event carries no
medical content: when, where, and "Appointment at <clinic>" — no specialty, no doctor's
specialty, no consultation type, no diagnosis, no note.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from scheduling.models import Appointment, AppointmentStatus

CRLF = "\r\n"
MAX_OCTETS = 75


def escape_text(value: str) -> str:
    """TEXT value escaping (RFC 5545 §3.3.11)."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def fold(line: str) -> str:
    """Fold a content line at 75 octets (§3.1), never inside a UTF-8 character.
    Continuation lines start with one space, which counts towards their 75 octets."""
    out: list[str] = []
    current = ""
    size = 0
    limit = MAX_OCTETS
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            out.append(current)
            current, size, limit = " ", 1, MAX_OCTETS
        current += char
        size += width
    out.append(current)
    return CRLF.join(out)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def site_domain() -> str:
    return urlsplit(settings.SITE_URL).hostname or "localhost"


def event_uid(appointment: Appointment) -> str:
    return f"{appointment.public_id}@{site_domain()}"


def appointment_ics(
    appointment: Appointment,
    *,
    language: str | None = None,
    sequence: int = 0,
    now: datetime | None = None,
) -> bytes:
    """The VCALENDAR with one VEVENT, as UTF-8 bytes with CRLF line endings.

    `sequence` is the number of times the appointment was moved (RFC 5545 SEQUENCE), so
    calendar apps replace the old time instead of keeping both.
    """
    now = now or timezone.now()
    language = language or appointment.patient.user.language
    location = appointment.location
    cancelled = appointment.status in (AppointmentStatus.CANCELLED, AppointmentStatus.EXPIRED)
    my_appointments = settings.SITE_URL.rstrip("/") + reverse("scheduling:my_appointments")
    with translation.override(language):
        summary = _("Appointment at %(clinic)s") % {"clinic": settings.CLINIC_NAME}
        description = _("Details, changes and cancellation: %(url)s") % {"url": my_appointments}
    place = ", ".join(part for part in (location.name, location.address) if part)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:-//{escape_text(settings.CLINIC_NAME)}//Patient portal//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:CANCEL" if cancelled else "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{event_uid(appointment)}",
        f"DTSTAMP:{_utc(now)}",
        f"DTSTART:{_utc(appointment.starts_at)}",
        f"DTEND:{_utc(appointment.ends_at)}",
        f"SEQUENCE:{sequence}",
        f"SUMMARY:{escape_text(summary)}",
        f"LOCATION:{escape_text(place)}",
        f"DESCRIPTION:{escape_text(description)}",
        f"URL:{my_appointments}",
        "STATUS:CANCELLED" if cancelled else "STATUS:CONFIRMED",
        "TRANSP:OPAQUE",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return (CRLF.join(fold(line) for line in lines) + CRLF).encode("utf-8")


def ics_filename(appointment: Appointment) -> str:
    return f"appointment-{appointment.starts_at.astimezone(UTC):%Y%m%d-%H%M}.ics"
