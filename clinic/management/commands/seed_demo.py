"""Demo data: a clinic network to click through. Idempotent; refuses production."""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.utils import timezone

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
from audit.models import AuditAction
from audit.services import audit_record
from telemedicine.demo import seed_video_demo
from telemedicine.demo_messaging import seed_messaging_demo

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

# Consultation types per specialty: (in-person price, video price) and cancellation
# policies that differ on purpose, so the demo shows each rule. One video type needs
# prepayment (the checkout path); the others are booked directly.
CONSULTATION_PRICES = {
    "therapist": ("2500.00", "1800.00"),
    "cardiologist": ("3500.00", "2800.00"),
    "neurologist": ("3300.00", "2600.00"),
    "pediatrician": ("2800.00", "2000.00"),
    "dermatologist": ("3000.00", "2200.00"),
    "endocrinologist": ("3400.00", "2700.00"),
}
# (free cancellation until N hours before, later: "fee" or "not_online", the fee)
CANCELLATION_POLICIES = {
    ("therapist", "in_person"): (24, "fee", "500.00"),
    ("therapist", "video"): (12, "fee", "300.00"),
    ("cardiologist", "in_person"): (24, "not_online", "0"),
    ("cardiologist", "video"): (24, "fee", "1400.00"),
    ("neurologist", "in_person"): (48, "fee", "1000.00"),
    ("neurologist", "video"): (12, "fee", "500.00"),
    ("pediatrician", "in_person"): (4, "not_online", "0"),
    ("pediatrician", "video"): (2, "fee", "200.00"),
    ("dermatologist", "in_person"): (24, "fee", "750.00"),
    ("dermatologist", "video"): (6, "not_online", "0"),
    ("endocrinologist", "in_person"): (24, "not_online", "0"),
    ("endocrinologist", "video"): (6, "fee", "500.00"),
}
PREPAYMENT_TYPE = "cardiologist-video"
VIDEO_MINUTES = 20
IN_PERSON_MINUTES = 30
# Mon-Fri at the doctor's location: a morning or an afternoon shift with a lunch break.
SHIFTS = {
    "morning": (time(8, 0), time(14, 0), time(11, 30), time(12, 0)),
    "afternoon": (time(13, 0), time(20, 0), time(16, 0), time(16, 30)),
}
DOCTOR_SHIFTS = ["morning", "afternoon", "afternoon", "morning"] * 3  # doctor01..doctor12
# Upcoming demo visits, booked through scheduling.services: (patient, doctor, mode,
# first day ahead to look at, which free slot of that day on). No prepayment types.
DEMO_VISITS = [
    (1, 1, "in_person", 1, 2),
    (1, 5, "video", 3, 1),
    (2, 3, "in_person", 1, 4),
    (3, 2, "in_person", 2, 0),
    (4, 7, "in_person", 1, 6),
    (5, 9, "video", 2, 3),
    (6, 12, "in_person", 4, 5),
]
# One past visit, completed, with a review waiting for approval.
DEMO_PAST_VISIT = (1, 1, "in_person")
DEMO_REVIEW = (5, "Внимательный врач, всё подробно объяснила.")


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
        "an admin and 40 patients; consultation types, the doctors' weekly hours, a few "
        "upcoming appointments and a past visit with a review waiting for approval."
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
            schedule = self._seed_schedule()
            schedule.update(self._seed_records())
            schedule.update(seed_video_demo())
            schedule.update(seed_messaging_demo())
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo data ready ({created} new accounts, "
                    + ", ".join(f"{n} new {what}" for what, n in schedule.items())
                    + ")."
                )
            )
        self._print_accounts()

    def _seed_records(self) -> dict[str, int]:
        """Visits, lab results (some waiting for review), prescriptions, care plans,
        vaccinations and documents for a few demo patients; idempotent like the rest."""
        from records.demo import seed_records_demo
        from records.demo_care import seed_care_demo
        from records.demo_documents import seed_documents_demo

        counts: dict[str, int] = {}
        for seed in (seed_records_demo, seed_care_demo, seed_documents_demo):
            counts.update(seed())
        return counts

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

    @transaction.atomic
    def _seed_schedule(self) -> dict[str, int]:
        """Consultation types, weekly hours, upcoming visits and one reviewed past visit.
        Each piece is created only when missing, so a second run adds nothing."""
        from scheduling import services as scheduling_services
        from scheduling.availability import free_slots
        from scheduling.models import (
            Appointment,
            AppointmentEvent,
            AppointmentEventKind,
            AppointmentSource,
            AppointmentStatus,
            ConsultationMode,
            ConsultationType,
            DoctorReview,
            WorkingHours,
            WorkingHoursBreak,
        )

        counts = {"consultation types": 0, "working hours": 0, "appointments": 0, "reviews": 0}
        names = {code: (ru, en) for code, ru, en in SPECIALTIES}
        types: dict[tuple[str, str], ConsultationType] = {}
        for spec_code, (in_person_price, video_price) in CONSULTATION_PRICES.items():
            specialty = Specialty.objects.get(code=spec_code)
            ru, en = names[spec_code]
            for mode, price, minutes, name_ru, name_en in (
                (
                    ConsultationMode.IN_PERSON,
                    in_person_price,
                    IN_PERSON_MINUTES,
                    f"{ru}: приём в клинике",
                    f"{en}: visit at the clinic",
                ),
                (
                    ConsultationMode.VIDEO,
                    video_price,
                    VIDEO_MINUTES,
                    f"{ru}: видеоконсультация",
                    f"{en}: video consultation",
                ),
            ):
                code = f"{spec_code}-{mode.replace('_', '-')}"
                hours, late, fee = CANCELLATION_POLICIES[(spec_code, mode.value)]
                ctype, new = ConsultationType.objects.get_or_create(
                    code=code,
                    defaults={
                        "name_ru": name_ru,
                        "name_en": name_en,
                        "specialty": specialty,
                        "mode": mode,
                        "duration_minutes": minutes,
                        "price": Decimal(price),
                        "prepayment_required": code == PREPAYMENT_TYPE,
                        "free_cancellation_hours": hours,
                        "late_cancellation": late,
                        "late_cancellation_fee": Decimal(fee),
                    },
                )
                counts["consultation types"] += new
                types[(spec_code, mode.value)] = ctype

        doctors = {
            i: User.objects.select_related(
                "staff_profile__specialty", "staff_profile__location"
            ).get(email=f"doctor{i:02d}@{DOMAIN}")
            for i in range(1, 13)
        }
        for i, doctor in doctors.items():
            profile = doctor.staff_profile
            spec_code = profile.specialty.code
            for mode in ConsultationMode:
                types[(spec_code, mode.value)].doctors.add(doctor)  # no-op when present
            if WorkingHours.objects.filter(doctor=doctor).exists():
                continue
            start, end, lunch_start, lunch_end = SHIFTS[DOCTOR_SHIFTS[i - 1]]
            for weekday in range(5):
                hours = WorkingHours.objects.create(
                    doctor=doctor,
                    location=profile.location,
                    weekday=weekday,
                    start=start,
                    end=end,
                    slot_minutes=30,
                )
                WorkingHoursBreak.objects.create(
                    working_hours=hours, start=lunch_start, end=lunch_end
                )
                counts["working hours"] += 1

        patients = {
            n: User.objects.select_related("patient_profile").get(email=f"patient{n:02d}@{DOMAIN}")
            for n in {visit[0] for visit in DEMO_VISITS} | {DEMO_PAST_VISIT[0]}
        }
        for patient_n, doctor_n, mode, days_ahead, nth in DEMO_VISITS:
            patient, doctor = patients[patient_n], doctors[doctor_n]
            already = Appointment.objects.filter(
                patient=patient.patient_profile, doctor=doctor
            ).exclude(status=AppointmentStatus.COMPLETED)
            if already.exists():
                continue
            ctype = types[(doctor.staff_profile.specialty.code, mode)]
            tz = ZoneInfo(doctor.staff_profile.location.time_zone)
            first_day = timezone.localdate(timezone=tz) + timedelta(days=days_ahead)
            slots = free_slots([doctor.pk], first_day, 7, consultation_type=ctype)[doctor.pk]
            if not slots:
                continue  # a fully booked week: nothing to show, nothing to create
            first_date = slots[0].local_start().date()
            day_slots = [s for s in slots if s.local_start().date() == first_date]
            slot = day_slots[min(nth, len(day_slots) - 1)]
            scheduling_services.appointment_book_slot(
                by=patient,
                patient=patient.patient_profile,
                doctor=doctor,
                consultation_type=ctype,
                starts_at=slot.start,
                source=AppointmentSource.PORTAL,
            )
            counts["appointments"] += 1

        patient_n, doctor_n, mode = DEMO_PAST_VISIT
        patient, doctor = patients[patient_n], doctors[doctor_n]
        past = Appointment.objects.filter(
            patient=patient.patient_profile, doctor=doctor, status=AppointmentStatus.COMPLETED
        ).first()
        if past is None:
            ctype = types[(doctor.staff_profile.specialty.code, mode)]
            location = doctor.staff_profile.location
            tz = ZoneInfo(location.time_zone)
            day = timezone.localdate(timezone=tz) - timedelta(days=5)
            while day.weekday() >= 5:
                day -= timedelta(days=1)
            shift_start = SHIFTS[DOCTOR_SHIFTS[doctor_n - 1]][0]
            starts = datetime.combine(day, shift_start, tzinfo=tz) + timedelta(minutes=60)
            during = DateTimeTZRange(starts, starts + ctype.duration, "[)")
            past = Appointment.objects.create(
                patient=patient.patient_profile,
                doctor=doctor,
                location=location,
                consultation_type=ctype,
                during=during,
                status=AppointmentStatus.COMPLETED,
                source=AppointmentSource.RECEPTION,
                price=ctype.price,
                currency=ctype.currency,
                created_at=starts - timedelta(days=7),
            )
            AppointmentEvent.objects.create(
                appointment=past,
                at=starts - timedelta(days=7),
                kind=AppointmentEventKind.CREATED,
                to_status=AppointmentStatus.BOOKED,
                to_during=during,
                note="demo data",
            )
            AppointmentEvent.objects.create(
                appointment=past,
                at=starts + ctype.duration,
                by=doctor,
                kind=AppointmentEventKind.STATUS,
                from_status=AppointmentStatus.IN_PROGRESS,
                to_status=AppointmentStatus.COMPLETED,
                note="demo data",
            )
            services.care_access_grant(
                by=None,
                doctor=doctor,
                patient=patient.patient_profile,
                reason=f"appointment {past.pk}",
            )
            audit_record(
                actor=None,
                action=AuditAction.CREATE,
                obj=past,
                patient=patient,
                detail={"status": "completed", "via": "seed_demo"},
            )
            counts["appointments"] += 1
        if not DoctorReview.objects.filter(appointment=past).exists():
            rating, text = DEMO_REVIEW
            scheduling_services.review_submit(
                by=patient, appointment=past, rating=rating, text=text
            )
            counts["reviews"] += 1
        return counts
