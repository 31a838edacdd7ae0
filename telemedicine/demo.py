"""Demo data for video consultations (called by `manage.py seed_demo`). Idempotent.

Every booked video appointment gets its consultation (room), and one video consultation
starts a few minutes after the seed runs — patient02 (telemedicine consent given,
identity verified by the seed) with doctor01, in extra hours added for it — so the
waiting room and the doctor's room can be tried at once. Booked through scheduling's
services like any other appointment. Without a LiveKit server (LIVEKIT_URL empty) the
pages say video is not available and the waiting room still works.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

DOMAIN = "clinic.test"
DEMO_PATIENT = f"patient02@{DOMAIN}"
DEMO_DOCTOR = f"doctor01@{DOMAIN}"
DEMO_BOOKED_BY = f"reception@{DOMAIN}"
STARTS_IN_MINUTES = 5


def _next_start(now):  # noqa: ANN001, ANN202
    """The next five-minute mark at least STARTS_IN_MINUTES from now."""
    base = now.replace(second=0, microsecond=0) + timedelta(minutes=STARTS_IN_MINUTES)
    return base + timedelta(minutes=(5 - base.minute % 5) % 5)


@transaction.atomic
def seed_video_demo(
    *,
    patient_email: str = DEMO_PATIENT,
    doctor_email: str = DEMO_DOCTOR,
    booked_by_email: str = DEMO_BOOKED_BY,
) -> dict[str, int]:
    from accounts import policies
    from accounts.models import User
    from scheduling import schedule
    from scheduling import services as scheduling
    from scheduling.models import (
        ACTIVE_STATUSES,
        Appointment,
        AppointmentSource,
        ConsultationMode,
        ExceptionKind,
    )
    from telemedicine.models import Consultation
    from telemedicine.services_video import consultation_ensure

    counts = {"video consultations": 0}
    videos = Appointment.objects.filter(
        consultation_type__mode=ConsultationMode.VIDEO,
        status__in=sorted(policies.VIDEO_JOINABLE_STATUSES),
    ).exclude(pk__in=Consultation.objects.values("appointment_id"))
    for appointment in videos.select_related("consultation_type", "patient__user"):
        consultation_ensure(appointment=appointment)
        counts["video consultations"] += 1

    patient = User.objects.filter(email=patient_email).select_related("patient_profile").first()
    doctor = User.objects.filter(email=doctor_email).select_related("staff_profile").first()
    booked_by = User.objects.filter(email=booked_by_email).first()
    if patient is None or doctor is None or booked_by is None:
        return counts
    now = timezone.now()
    open_or_soon = Appointment.objects.filter(
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type__mode=ConsultationMode.VIDEO,
        status__in=ACTIVE_STATUSES,
        during__endswith__gte=now - policies.VIDEO_JOIN_LATE,
        during__startswith__lte=now + timedelta(hours=1),
    )
    if open_or_soon.exists():
        return counts
    ctype = doctor.consultation_types.filter(mode=ConsultationMode.VIDEO, active=True).first()
    location = doctor.staff_profile.location
    if ctype is None or location is None:
        return counts
    start = _next_start(now)
    try:
        with transaction.atomic():
            schedule.schedule_exception_add(
                by=booked_by,
                doctor=doctor,
                kind=ExceptionKind.EXTRA,
                starts_at=start,
                ends_at=start + 3 * ctype.duration,
                location=location,
                slot_minutes=ctype.duration_minutes,
                reason="demo: video consultation",
            )
            appointment = scheduling.appointment_book_slot(
                by=booked_by,
                patient=patient.patient_profile,
                doctor=doctor,
                consultation_type=ctype,
                starts_at=start,
                source=AppointmentSource.RECEPTION,
            )
    except (ValidationError, scheduling.SlotTaken):
        # The doctor is busy right now (another demo visit): nothing to show this time.
        return counts
    consultation_ensure(appointment=appointment)
    counts["video consultations"] += 1
    return counts
