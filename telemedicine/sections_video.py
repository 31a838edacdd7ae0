"""Telemedicine's handlers on scheduling's hooks (registered by TelemedicineConfig.ready()).

- `appointment_booked`: a video appointment gets its consultation and random room name
  inside the booking's transaction.
- `appointment_cancelled`, `appointment_status_changed` (to cancelled or no-show): the
  consultation is closed for good and its LiveKit room closed after the commit.
- `appointment_page_sections` (asked, not told): the "Video consultation" section of
  the appointment's page — for the patient what is still needed (consent, identity) and
  the way into the waiting room; for staff whether the patient is ready, and for the
  appointment's doctor the way into the room. States and links only.
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from accounts import policies
from accounts.selectors import consent_given

CLOSING_STATUSES = frozenset({"cancelled", "no_show", "expired"})


def _appointment(appointment_id: int) -> Any:
    from scheduling.models import Appointment

    return (
        Appointment.objects.select_related("consultation_type", "patient__user")
        .filter(pk=appointment_id)
        .first()
    )


def on_appointment_booked(*, appointment_id: int, **_kwargs: Any) -> None:
    from telemedicine.services_video import consultation_ensure

    appointment = _appointment(appointment_id)
    if appointment is not None and policies.is_video_appointment(appointment):
        consultation_ensure(appointment=appointment)


def on_appointment_cancelled(*, appointment_id: int, **_kwargs: Any) -> None:
    from telemedicine.services_video import consultation_close_for_appointment

    consultation_close_for_appointment(appointment_id=appointment_id, reason="cancelled")


def on_appointment_status_changed(*, appointment_id: int, status: str = "", **_kwargs: Any) -> None:
    from telemedicine.services_video import consultation_close_for_appointment

    if status in CLOSING_STATUSES:
        consultation_close_for_appointment(appointment_id=appointment_id, reason=status)


def appointment_video_section(*, user: Any, appointment: Any, audience: str, **_: Any) -> str:
    from telemedicine.models import Consultation, ConsultationParty
    from telemedicine.selectors_video import party_of, video_status, when_text

    if not policies.is_video_appointment(appointment):
        return ""
    if appointment.status not in policies.VIDEO_VISIBLE_STATUSES:
        return ""
    party = party_of(user, appointment)
    if audience == "patient" and party != ConsultationParty.PATIENT:
        return ""
    profile = appointment.patient
    consent = consent_given(profile, "telemedicine")
    verified = profile.identity_verified
    consultation = Consultation.objects.filter(appointment=appointment).first()
    status = video_status(consultation, appointment, viewer_party=party or "staff")
    return render_to_string(
        "telemedicine/video/_appointment_section.html",
        {
            "appointment": appointment,
            "audience": audience,
            "party": party,
            "consent": consent,
            "verified": verified,
            "ready": consent and verified,
            "status": status,
            "when": when_text(appointment),
            "can_open": bool(party) and consent and verified,
            "upcoming": appointment.ends_at > timezone.now(),
        },
    )


def connect() -> None:
    from scheduling import hooks

    hooks.appointment_booked.register(on_appointment_booked)
    hooks.appointment_cancelled.register(on_appointment_cancelled)
    hooks.appointment_status_changed.register(on_appointment_status_changed)
    hooks.appointment_page_sections.register(appointment_video_section)
