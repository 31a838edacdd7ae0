"""Test data built through the services, the same path production data takes."""

from __future__ import annotations

import itertools
from datetime import date

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from accounts import services
from accounts.models import Department, Location, Role, Specialty, User
from accounts.validators import format_snils, snils_checksum

PASSWORD = "Correct-Horse-Battery-9"  # noqa: S105
_seq = itertools.count(1)


def valid_snils(n: int | None = None) -> str:
    n = next(_seq) if n is None else n
    # Stays nine digits however many patients a run makes (unique while gcd(step, span)=1).
    first_nine = f"{100_000_000 + (200_000_000 + n * 104729) % 899_999_999:09d}"
    return format_snils(first_nine + f"{snils_checksum(first_nine):02d}")


def make_patient(
    *, email: str | None = None, verified_email: bool = True, **profile: object
) -> User:
    n = next(_seq)
    user = services.patient_register(
        email=email or f"patient{n}@example.org",
        password=PASSWORD,
        first_name=str(profile.pop("first_name", "Анна")),
        last_name=str(profile.pop("last_name", f"Иванова{n}")),
        birth_date=profile.pop("birth_date", date(1950, 3, 14)),
        phone=str(profile.pop("phone", "+7 912 345-67-89")),
        language=str(profile.pop("language", "en")),
        accept_health_data_consent=True,
        send_verification=False,
    )
    if verified_email:
        user.email_verified_at = user.date_joined
        user.save(update_fields=["email_verified_at"])
    if profile:
        services.patient_profile_update(by=user, profile=user.patient_profile, **profile)
        user.refresh_from_db()
    return user


def make_location(code: str = "main", time_zone: str = "Europe/Moscow") -> Location:
    location, _ = Location.objects.get_or_create(
        code=code,
        defaults={"name": f"Clinic {code}", "address": "Street 1", "time_zone": time_zone},
    )
    return location


def make_staff(
    role: str = Role.DOCTOR,
    *,
    email: str | None = None,
    with_totp: bool = True,
    language: str | None = None,
    **profile: object,
) -> User:
    n = next(_seq)
    location = make_location()
    department, _ = Department.objects.get_or_create(
        code="main-outpatient", defaults={"name": "Outpatient", "location": location}
    )
    specialty = None
    if role == Role.DOCTOR:
        specialty, _ = Specialty.objects.get_or_create(
            code="therapist", defaults={"name_ru": "Терапевт", "name_en": "General practitioner"}
        )
    user = services.staff_create(
        by=None,
        email=email or f"{role}{n}@example.org",
        password=PASSWORD,
        role=role,
        full_name=str(profile.pop("full_name", f"Doctor {n}")),
        department=department,
        location=location,
        specialty=specialty,
        **profile,
    )
    if language is not None:
        user.language = language
        user.save(update_fields=["language"])
    if with_totp:
        user.totp_secret = generate_totp_secret()
        TOTP.activate(user, user.totp_secret)
    return user


# --- Scheduling ----------------------------------------------------------------------


def make_consultation_type(doctor: User | None = None, **fields: object):
    from decimal import Decimal

    from scheduling.models import ConsultationType

    specialty, _ = Specialty.objects.get_or_create(
        code="therapist", defaults={"name_ru": "Терапевт", "name_en": "General practitioner"}
    )
    n = next(_seq)
    defaults = {
        "code": f"consult-{n}",
        "name_ru": "Приём",
        "name_en": "Consultation",
        "specialty": specialty,
        "duration_minutes": 30,
        "price": Decimal("2500.00"),
        "free_cancellation_hours": 24,
    }
    defaults.update(fields)
    ctype = ConsultationType.objects.create(**defaults)
    if doctor is not None:
        ctype.doctors.add(doctor)
    return ctype


def make_working_week(
    doctor: User,
    location: Location | None = None,
    *,
    start: str = "09:00",
    end: str = "13:00",
    slot_minutes: int = 30,
    weekdays=range(7),
    breaks: tuple[tuple[str, str], ...] = (),
):
    from datetime import time

    from scheduling.models import WorkingHours, WorkingHoursBreak

    location = location or make_location()
    parse = lambda value: time.fromisoformat(value)  # noqa: E731
    created = []
    for weekday in weekdays:
        hours = WorkingHours.objects.create(
            doctor=doctor,
            location=location,
            weekday=weekday,
            start=parse(start),
            end=parse(end),
            slot_minutes=slot_minutes,
        )
        for b_start, b_end in breaks:
            WorkingHoursBreak.objects.create(
                working_hours=hours, start=parse(b_start), end=parse(b_end)
            )
        created.append(hours)
    return created
