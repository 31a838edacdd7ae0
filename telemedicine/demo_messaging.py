"""Demo conversations for `seed_demo`: `seed_messaging_demo()`. Idempotent: a demo
patient who already has a thread gets no new one.

- patient01 asks reception about their next appointment (linked to it, so that
  appointment's doctor sees it too); reception answers: waiting for the patient, with a
  "new message" marker in the patient's inbox.
- patient03 asks about results: routed to their care team (or to reception when they
  have none), waiting for the clinic in the nurse's and doctors' queue.

Everything goes through telemedicine.services_messaging, the path real messages take.
"""

from __future__ import annotations

from accounts.models import User
from telemedicine import selectors_messaging as selectors
from telemedicine import services_messaging as services
from telemedicine.models import AboutKind, Thread, Topic

DOMAIN = "clinic.test"


def _user(email: str) -> User | None:
    return User.objects.filter(email=email).select_related("patient_profile").first()


def seed_messaging_demo() -> dict[str, int]:
    reception = _user(f"reception@{DOMAIN}")
    made = 0
    first = _user(f"patient01@{DOMAIN}")
    if first is not None and reception is not None and not _has_thread(first):
        appointments = selectors.linkable_records(first).appointments
        about = appointments[0] if appointments else None
        thread = services.thread_start(
            by=first,
            patient=first.patient_profile,
            topic=Topic.APPOINTMENT,
            subject="Можно ли прийти на 15 минут раньше?",
            body="Здравствуйте! Смогу прийти только немного раньше назначенного времени. "
            "Это возможно?",
            about_kind=AboutKind.APPOINTMENT if about else "",
            about_id=about.public_id if about else None,
        )
        services.thread_reply(
            by=reception,
            thread=thread,
            body="Здравствуйте! Да, приходите: подождёте в холле, врач примет вас по готовности.",
        )
        made += 1
    third = _user(f"patient03@{DOMAIN}")
    if third is not None and not _has_thread(third):
        reports = selectors.linkable_records(third).lab_reports
        about = reports[0] if reports else None
        services.thread_start(
            by=third,
            patient=third.patient_profile,
            topic=Topic.RESULTS,
            subject="Вопрос по анализам",
            body="Подскажите, нужно ли что-то менять в лечении после этих анализов?",
            about_kind=AboutKind.LAB_REPORT if about else "",
            about_id=about.public_id if about else None,
        )
        made += 1
    return {"message threads": made}


def _has_thread(user: User) -> bool:
    return Thread.objects.filter(patient__user=user).exists()
