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
    first_nine = f"{300_000_000 + n * 104729:09d}"
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
    role: str = Role.DOCTOR, *, email: str | None = None, with_totp: bool = True, **profile: object
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
    if with_totp:
        user.totp_secret = generate_totp_secret()
        TOTP.activate(user, user.totp_secret)
    return user
