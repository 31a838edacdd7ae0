"""Demo data: a clinic network to click through. Idempotent; refuses production."""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import date

from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import services
from accounts.models import (
    ConsentKind,
    Department,
    Location,
    PatientProfile,
    Role,
    Specialty,
    User,
    VerificationMethod,
)
from accounts.validators import format_snils, snils_checksum

DOMAIN = "clinic.test"

LOCATIONS = [
    ("msk-tverskaya", "Клиника на Тверской", "Москва, ул. Тверская, 12", "Europe/Moscow"),
    ("ekb-lenina", "Клиника на Ленина", "Екатеринбург, пр. Ленина, 50", "Asia/Yekaterinburg"),
]
SPECIALTIES = [
    ("therapist", "Терапевт", "General practitioner"),
    ("cardiologist", "Кардиолог", "Cardiologist"),
    ("neurologist", "Невролог", "Neurologist"),
    ("pediatrician", "Педиатр", "Paediatrician"),
    ("dermatologist", "Дерматолог", "Dermatologist"),
    ("endocrinologist", "Эндокринолог", "Endocrinologist"),
]
DOCTOR_NAMES = [
    "Иванова Мария Сергеевна",
    "Петров Алексей Николаевич",
    "Смирнова Ольга Викторовна",
    "Кузнецов Дмитрий Андреевич",
    "Попова Елена Игоревна",
    "Васильев Сергей Павлович",
    "Соколова Анна Дмитриевна",
    "Михайлов Игорь Олегович",
    "Новикова Татьяна Юрьевна",
    "Фёдоров Андрей Викторович",
    "Морозова Наталья Алексеевна",
    "Волков Павел Сергеевич",
]
FIRST_NAMES_F = ["Анна", "Мария", "Елена", "Ольга", "Наталья", "Ирина", "Светлана", "Татьяна"]
FIRST_NAMES_M = ["Иван", "Алексей", "Сергей", "Дмитрий", "Андрей", "Михаил", "Николай", "Павел"]
LAST_NAMES = ["Смирнов", "Кузнецов", "Попов", "Лебедев", "Козлов", "Новиков", "Морозов", "Орлов"]
MIDDLE_M = ["Иванович", "Петрович", "Сергеевич", "Алексеевич"]
MIDDLE_F = ["Ивановна", "Петровна", "Сергеевна", "Алексеевна"]


def demo_totp_secret(email: str) -> str:
    """A fixed secret per demo staff account, so demo sign-in can be scripted."""
    digest = hashlib.sha256(f"demo-totp|{email}".encode()).digest()[:20]
    return base64.b32encode(digest).decode()


def demo_snils(n: int) -> str:
    first_nine = f"{200_000_000 + n * 7919:09d}"
    return format_snils(first_nine + f"{snils_checksum(first_nine):02d}")


def demo_accounts() -> list[tuple[str, str, str]]:
    """(role, email, what to know) for every demo sign-in."""
    rows = [
        ("admin", f"admin@{DOMAIN}", "TOTP"),
        ("reception", f"reception@{DOMAIN}", "TOTP"),
        ("nurse", f"nurse@{DOMAIN}", "TOTP"),
    ]
    rows += [("doctor", f"doctor{i:02d}@{DOMAIN}", "TOTP") for i in range(1, 13)]
    rows += [("patient", f"patient{i:02d}@{DOMAIN}", "") for i in range(1, 41)]
    return rows


class Command(BaseCommand):
    help = (
        "Load demo data: 2 locations, 6 specialties, 12 doctors, a nurse, reception, "
        "an admin and 40 patients."
    )

    def add_arguments(self, parser):  # noqa: ANN001, ANN201
        parser.add_argument(
            "--print-accounts", action="store_true", help="Only print the demo sign-ins."
        )

    def handle(self, *args, print_accounts: bool = False, **options):  # noqa: ANN001, ANN201
        if settings.PRODUCTION:
            raise CommandError("seed_demo refuses to run with DJANGO_ENV=production.")
        if not print_accounts:
            created = self._seed()
            self.stdout.write(self.style.SUCCESS(f"Demo data ready ({created} new accounts)."))
        self._print_accounts()

    def _print_accounts(self) -> None:
        self.stdout.write(f"Demo accounts (password for all: {settings.DEMO_PASSWORD}):")
        shown = demo_accounts()
        for role, email, extra in shown[:4] + shown[15:17]:
            hint = "  (TOTP: `manage.py demo_totp " + email + "`)" if extra else ""
            self.stdout.write(f"  {role:<10} {email}{hint}")
        self.stdout.write(f"  … doctor01–doctor12@{DOMAIN}, patient01–patient40@{DOMAIN}")

    @transaction.atomic
    def _seed(self) -> int:
        rng = random.Random(20261121)  # noqa: S311 - demo data, reproducible on purpose
        locations = []
        for code, name, address, tz in LOCATIONS:
            loc, _ = Location.objects.get_or_create(
                code=code, defaults={"name": name, "address": address, "time_zone": tz}
            )
            locations.append(loc)
        specialties = []
        for code, ru, en in SPECIALTIES:
            spec, _ = Specialty.objects.get_or_create(
                code=code, defaults={"name_ru": ru, "name_en": en}
            )
            specialties.append(spec)
        departments = []
        for loc in locations:
            dep, _ = Department.objects.get_or_create(
                code=f"{loc.code}-outpatient",
                defaults={"name": "Поликлиническое отделение", "location": loc},
            )
            departments.append(dep)

        created = 0
        # Hash the shared demo password once: PBKDF2 per account would take most of the run.
        demo_hash = make_password(settings.DEMO_PASSWORD)
        staff = [
            ("admin", Role.ADMIN, "Администратор Клиники", None, 0),
            ("reception", Role.RECEPTION, "Регистратура Тверская", None, 0),
            ("nurse", Role.NURSE, "Медсестра Алина Котова", None, 0),
        ] + [
            (f"doctor{i + 1:02d}", Role.DOCTOR, DOCTOR_NAMES[i], specialties[i // 2], i % 2)
            for i in range(12)
        ]
        for local, role, full_name, specialty, loc_index in staff:
            email = f"{local}@{DOMAIN}"
            if User.objects.filter(email=email).exists():
                continue
            user = services.staff_create(
                by=None,
                email=email,
                password=None,
                role=role,
                full_name=full_name,
                specialty=specialty,
                department=departments[loc_index],
                location=locations[loc_index],
                title="Врач" if role == Role.DOCTOR else "",
                languages="русский, English" if loc_index == 0 else "русский",
                practising_since=2000 + rng.randint(0, 20) if role == Role.DOCTOR else None,
                bio="Принимает взрослых пациентов." if role == Role.DOCTOR else "",
            )
            user.password = demo_hash
            user.is_superuser = role == Role.ADMIN
            user.save(update_fields=["password", "is_superuser"])
            TOTP.activate(user, demo_totp_secret(email))
            created += 1

        reception = User.objects.get(email=f"reception@{DOMAIN}")
        for i in range(1, 41):
            email = f"patient{i:02d}@{DOMAIN}"
            if User.objects.filter(email=email).exists():
                continue
            female = i % 2 == 0
            first = rng.choice(FIRST_NAMES_F if female else FIRST_NAMES_M)
            last = rng.choice(LAST_NAMES) + ("а" if female else "")
            middle = rng.choice(MIDDLE_F if female else MIDDLE_M)
            user = services.patient_register(
                email=email,
                password=None,
                first_name=first,
                last_name=last,
                middle_name=middle,
                birth_date=date(1940 + rng.randint(0, 65), rng.randint(1, 12), rng.randint(1, 28)),
                phone=f"+7 9{rng.randint(10, 99)} {rng.randint(100, 999)}-"
                f"{rng.randint(10, 99)}-{rng.randint(10, 99)}",
                language="en" if i % 5 == 0 else "ru",
                accept_health_data_consent=True,
                send_verification=False,
            )
            user.password = demo_hash
            user.email_verified_at = user.date_joined
            user.save(update_fields=["password", "email_verified_at"])
            profile: PatientProfile = user.patient_profile
            if i <= 30:
                profile = services.patient_profile_update(
                    by=user,
                    profile=profile,
                    sex="female" if female else "male",
                    address=f"г. Москва, ул. Садовая, д. {i}",
                    snils=demo_snils(i),
                    passport=f"45{i:02d} {100000 + i * 37:06d}",
                    insurance_policy=f"{7700000000000000 + i}",
                )
            if i <= 20:
                services.identity_verify(
                    by=reception, profile=profile, method=VerificationMethod.IN_PERSON
                )
                services.consent_give(by=user, profile=profile, kind=ConsentKind.TELEMEDICINE)
            created += 1
        # Keep Authenticator import used: staff without TOTP would be stuck at the MFA gate.
        missing = User.objects.exclude(role=Role.PATIENT).exclude(
            pk__in=Authenticator.objects.filter(type=Authenticator.Type.TOTP).values("user")
        )
        for user in missing.filter(email_index__isnull=False):
            if user.email.endswith(f"@{DOMAIN}"):
                TOTP.activate(user, demo_totp_secret(user.email))
        return created
