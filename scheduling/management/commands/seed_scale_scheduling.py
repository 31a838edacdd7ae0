"""Benchmark data at DESIGN.md's scale, scheduling's part, built in SQL in minutes.

manage.py seed_scale_scheduling [--patients 100000] [--doctors 200] [--appointments 1000000]
    [--yes]

`manage.py seed_scale` (in clinic/) runs this and then records' part
(`seed_scale_records`); run this alone for calendars without medical records.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.utils import timezone

from accounts.models import Department, Location, Role, Specialty, StaffProfile, User
from accounts.validators import format_snils, snils_checksum
from clinic.crypto import encrypt_text
from clinic.scale import SCALE_PASSWORD, refuse_production
from scheduling.models import (
    ConsultationMode,
    ConsultationType,
    ExceptionKind,
    ScheduleException,
    WorkingHours,
    WorkingHoursBreak,
)

LOCATIONS = [
    ("scale-msk", "Scale: Москва", "Москва, ул. Новая, 1", "Europe/Moscow"),
    ("scale-ekb", "Scale: Екатеринбург", "Екатеринбург, ул. Новая, 2", "Asia/Yekaterinburg"),
    # A zone with clock changes, so the grid crosses them.
    ("scale-lon", "Scale: London", "1 New Street, London", "Europe/London"),
]
SPECIALTIES = [
    ("therapist", "Терапевт", "General practitioner"),
    ("cardiologist", "Кардиолог", "Cardiologist"),
    ("neurologist", "Невролог", "Neurologist"),
    ("pediatrician", "Педиатр", "Paediatrician"),
    ("dermatologist", "Дерматолог", "Dermatologist"),
    ("endocrinologist", "Эндокринолог", "Endocrinologist"),
    ("ophthalmologist", "Офтальмолог", "Ophthalmologist"),
    ("otolaryngologist", "Оториноларинголог", "ENT specialist"),
    ("gastroenterologist", "Гастроэнтеролог", "Gastroenterologist"),
    ("urologist", "Уролог", "Urologist"),
]
SLOT_MINUTES = 30
# Weekly templates (Mon-Fri): (start, end, break start, break end), local time.
SHIFTS = [
    (clock(9, 0), clock(17, 0), clock(13, 0), clock(14, 0)),  # 14 slots
    (clock(8, 0), clock(15, 0), clock(11, 30), clock(12, 0)),  # 13 slots
    (clock(12, 0), clock(20, 0), clock(15, 30), clock(16, 0)),  # 15 slots
]
VACATION_DAYS = 7

LAST_M = [
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
    "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
]  # fmt: skip
FIRST_M = [
    "Александр", "Дмитрий", "Максим", "Сергей", "Андрей", "Алексей", "Артём", "Илья",
    "Кирилл", "Михаил", "Никита", "Матвей", "Роман", "Егор", "Арсений", "Иван",
]  # fmt: skip
FIRST_F = [
    "Анастасия", "Мария", "Анна", "Виктория", "Екатерина", "Наталья", "Марина", "Полина",
    "Дарья", "Алиса", "Ксения", "Елена", "Ольга", "Татьяна", "Ирина", "Светлана",
]  # fmt: skip
MIDDLE_M = ["Александрович", "Дмитриевич", "Сергеевич", "Андреевич", "Иванович", "Петрович"]
MIDDLE_F = ["Александровна", "Дмитриевна", "Сергеевна", "Андреевна", "Ивановна", "Петровна"]
STREETS = ["Ленина", "Садовая", "Мира", "Гагарина", "Победы", "Советская", "Школьная"]

HELP = """\
Build DESIGN.md's data scale for benchmarks: patients, doctors with weekly templates and
an upcoming vacation, and appointments over two years on each doctor's slot grid (past
ones completed, cancelled or no-show; upcoming ones booked, confirmed or cancelled), plus
the care-access grants that booking would have given. Everything is generated in SQL
(INSERT ... SELECT over generate_series), not through the ORM row by row.

Encryption shortcut, for benchmark data only: encrypting every patient's fields one by
one would dominate the run, so a small pool of realistic values (names, birth dates,
phones, addresses, documents, emails) is encrypted once and the ciphertexts are reused.
Equal plaintexts then share a ciphertext, which real data must never do (each real value
is encrypted with its own random IV); here it only makes the rows the right size and
decryptable. Blind-index columns (email, SNILS, passport) get unique HMAC-looking values
that do not match the pooled plaintexts, so scale accounts cannot be found by email and
have an unusable password ("!seed_scale", which also marks them); tests and benchmarks
use force_login or ids.

Appointments never overlap per doctor: each takes a distinct cell of the doctor's slot
grid, so the exclusion constraint stays enabled while they load. Each run adds a new
batch. Refuses production, and refuses a database that has other (non-scale) users
unless --yes."""


def _snils(n: int) -> str:
    first_nine = f"{300_000_000 + n * 7919:09d}"
    return format_snils(first_nine + f"{snils_checksum(first_nine):02d}")


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser):  # noqa: ANN001, ANN201
        parser.add_argument("--patients", type=int, default=100_000)
        parser.add_argument("--doctors", type=int, default=200)
        parser.add_argument("--appointments", type=int, default=1_000_000)
        parser.add_argument(
            "--days", type=int, default=730, help="Length of the appointment period (days)."
        )
        parser.add_argument(
            "--days-ahead",
            type=int,
            default=56,
            help="How much of the period lies in the future (days from today).",
        )
        parser.add_argument(
            "--no-care-grants",
            action="store_true",
            help="Skip the per (doctor, patient) record-access grants.",
        )
        parser.add_argument(
            "--yes", action="store_true", help="Run even though the database has other users."
        )

    def handle(self, *args, **options):  # noqa: ANN001, ANN201
        refuse_production("seed_scale")
        patients, doctors = options["patients"], options["doctors"]
        appointments = options["appointments"]
        if patients < 1 or doctors < 1 or appointments < 0:
            raise CommandError("--patients and --doctors must be at least 1.")
        if options["days_ahead"] >= options["days"] or options["days_ahead"] < 0:
            raise CommandError("--days-ahead must be between 0 and --days.")
        others = User.objects.exclude(password=SCALE_PASSWORD).count()
        if others and not options["yes"]:
            raise CommandError(
                f"This database has {others} users that seed_scale did not create. It is "
                "meant for a scratch database; pass --yes to add scale data anyway."
            )
        self.started = time.perf_counter()
        # Unique per run: blind-index values never collide with an earlier batch.
        self.tag = secrets.token_hex(8)
        self.rng = random.Random(20240601)  # noqa: S311 - benchmark data
        with transaction.atomic():
            with connection.cursor() as cursor:
                # Check foreign keys per statement: deferred checks of a million rows
                # would queue in memory until the commit.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            with self.phase("reference data and consultation types"):
                self._reference()
            with self.phase(f"{doctors} doctors, weekly templates, vacations"):
                doctor_rows = self._doctors(doctors)
            with self.phase(f"{patients} patients"):
                self._patients(patients)
            with self.phase(f"{appointments} appointments"):
                made = self._appointments(
                    doctor_rows, appointments, options["days"], options["days_ahead"]
                )
            if not options["no_care_grants"]:
                with self.phase("care-access grants"):
                    grants = self._care_grants(doctor_rows)
                self.stdout.write(f"  {grants} (doctor, patient) grants")
        with self.phase("analyze"), connection.cursor() as cursor:
            for table in (
                "accounts_user",
                "accounts_patientprofile",
                "scheduling_appointment",
                "guardian_userobjectpermission",
            ):
                cursor.execute(f"ANALYZE {table}")  # noqa: S608 - fixed names
        self.stdout.write(
            self.style.SUCCESS(
                f"Scale data ready: {patients} patients, {doctors} doctors, {made} appointments "
                f"in {time.perf_counter() - self.started:.1f} s."
            )
        )

    @contextmanager
    def phase(self, label: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.stdout.write(f"{label}: {time.perf_counter() - started:.1f} s")

    # --- reference data ---------------------------------------------------------------

    def _reference(self) -> None:
        from accounts.services import roles_sync_groups

        roles_sync_groups()
        self.locations = []
        for code, name, address, tz in LOCATIONS:
            location, _ = Location.objects.get_or_create(
                code=code, defaults={"name": name, "address": address, "time_zone": tz}
            )
            department, _ = Department.objects.get_or_create(
                code=f"{code}-outpatient",
                defaults={"name": "Поликлиническое отделение", "location": location},
            )
            self.locations.append((location, department))
        self.types: list[tuple[Specialty, ConsultationType, ConsultationType]] = []
        for i, (code, ru, en) in enumerate(SPECIALTIES):
            specialty, _ = Specialty.objects.get_or_create(
                code=code, defaults={"name_ru": ru, "name_en": en}
            )
            pair = []
            for mode, price in (
                (ConsultationMode.IN_PERSON, Decimal(2500 + 100 * i)),
                (ConsultationMode.VIDEO, Decimal(1800 + 100 * i)),
            ):
                ctype, _ = ConsultationType.objects.get_or_create(
                    code=f"scale-{code}-{mode.replace('_', '-')}",
                    defaults={
                        "name_ru": f"{ru}: {'приём' if mode == 'in_person' else 'видео'}",
                        "name_en": f"{en}: {'visit' if mode == 'in_person' else 'video'}",
                        "specialty": specialty,
                        "mode": mode,
                        "duration_minutes": SLOT_MINUTES,
                        "price": price,
                        "free_cancellation_hours": (24, 12, 48)[i % 3],
                        "late_cancellation": ("fee", "not_online")[i % 2],
                        "late_cancellation_fee": price / 4,
                    },
                )
                pair.append(ctype)
            self.types.append((specialty, pair[0], pair[1]))

    # --- doctors ---------------------------------------------------------------------

    def _pool(self, values: list[str]) -> list[str]:
        return [encrypt_text(v) for v in values]

    def _insert_users(self, count: int, role: str, target: str) -> None:
        """`count` users with pooled email ciphertexts into the temp table `target` (ids)."""
        emails = self._pool([f"{role}{n:02d}@scale.clinic.test" for n in range(32)])
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE {target} (id bigint) ON COMMIT DROP")
            cursor.execute(
                f"""
                WITH created AS (
                    INSERT INTO accounts_user (password, is_superuser, email, email_index, role,
                        language, is_active, is_staff, date_joined, email_verified_at)
                    SELECT %(pw)s, false,
                        (%(emails)s::text[])[1 + n %% cardinality(%(emails)s::text[])],
                        encode(sha256(convert_to(%(tag)s || '|{role}|' || n, 'UTF8')), 'hex'),
                        %(role)s, CASE WHEN n %% 10 = 0 THEN 'en' ELSE 'ru' END, true, false,
                        now() - (n %% 1500) * interval '1 day',
                        now() - (n %% 1500) * interval '1 day'
                    FROM generate_series(0, %(count)s - 1) AS n
                    RETURNING id
                )
                INSERT INTO {target} (id) SELECT id FROM created
                """,  # noqa: S608 - fixed names
                {"pw": SCALE_PASSWORD, "emails": emails, "tag": self.tag, "role": role,
                 "count": count},
            )  # fmt: skip
            cursor.execute(
                f"""
                INSERT INTO accounts_user_groups (user_id, group_id)
                SELECT t.id, g.id FROM {target} t, auth_group g WHERE g.name = %s
                """,  # noqa: S608
                [role],
            )

    def _doctors(self, count: int) -> list[dict]:
        self._insert_users(count, Role.DOCTOR, "scale_new_doctor")
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM scale_new_doctor ORDER BY id")
            ids = [row[0] for row in cursor.fetchall()]
        today = timezone.localdate()
        rows, profiles, hours, exceptions, offers = [], [], [], [], []
        for idx, user_id in enumerate(ids):
            location, department = self.locations[idx % len(self.locations)]
            specialty, in_person, video = self.types[idx % len(self.types)]
            shift = (idx // len(self.locations)) % len(SHIFTS)
            female = idx % 2 == 0
            name = " ".join(
                (
                    self.rng.choice(LAST_M) + ("а" if female else ""),
                    self.rng.choice(FIRST_F if female else FIRST_M),
                    self.rng.choice(MIDDLE_F if female else MIDDLE_M),
                )
            )
            profiles.append(
                StaffProfile(
                    user_id=user_id,
                    full_name=name,
                    title="Врач",
                    specialty=specialty,
                    department=department,
                    location=location,
                    languages="русский" if idx % 3 else "русский, English",
                    practising_since=1990 + idx % 30,
                    bio="Принимает взрослых и детей." if idx % 4 == 0 else "",
                )
            )
            start, end, break_start, break_end = SHIFTS[shift]
            for weekday in range(5):
                hours.append(
                    (
                        WorkingHours(
                            doctor_id=user_id,
                            location=location,
                            weekday=weekday,
                            start=start,
                            end=end,
                            slot_minutes=SLOT_MINUTES,
                        ),
                        (break_start, break_end),
                    )
                )
            # One week off somewhere in the next eight weeks.
            vacation_start = today + timedelta(days=7 + (idx * 5) % 49)
            vacation_end = vacation_start + timedelta(days=VACATION_DAYS - 1)
            tz = ZoneInfo(location.time_zone)
            exceptions.append(
                ScheduleException(
                    doctor_id=user_id,
                    kind=ExceptionKind.VACATION,
                    during=DateTimeTZRange(
                        datetime.combine(vacation_start, clock(0), tz),
                        datetime.combine(vacation_end + timedelta(days=1), clock(0), tz),
                        "[)",
                    ),
                    reason="Отпуск",
                )
            )
            offers += [
                ConsultationType.doctors.through(consultationtype_id=t.pk, user_id=user_id)
                for t in (in_person, video)
            ]
            rows.append(
                {
                    "idx": idx,
                    "id": user_id,
                    "location_id": location.pk,
                    "tz": location.time_zone,
                    "shift": shift,
                    "type_id": in_person.pk,
                    "video_type_id": video.pk,
                    "price": in_person.price,
                    "video_price": video.price,
                    "vac_start": vacation_start,
                    "vac_end": vacation_end,
                }
            )
        StaffProfile.objects.bulk_create(profiles, batch_size=1000)
        WorkingHours.objects.bulk_create([h for h, _ in hours], batch_size=1000)
        WorkingHoursBreak.objects.bulk_create(
            [WorkingHoursBreak(working_hours=h, start=s, end=e) for h, (s, e) in hours],
            batch_size=1000,
        )
        ScheduleException.objects.bulk_create(exceptions, batch_size=1000)
        ConsultationType.doctors.through.objects.bulk_create(offers, batch_size=1000)
        return rows

    # --- patients --------------------------------------------------------------------

    def _patients(self, count: int) -> None:
        self._insert_users(count, Role.PATIENT, "scale_new_patient")
        rng = self.rng
        female_last = [name + "а" for name in LAST_M]
        birth_dates = [
            (date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 84))).isoformat()
            for _ in range(400)
        ]
        phones = [
            f"+7 9{rng.randint(10, 99)} {rng.randint(100, 999)}-{rng.randint(10, 99)}-"
            f"{rng.randint(10, 99)}"
            for _ in range(200)
        ]
        addresses = [
            f"г. Москва, ул. {rng.choice(STREETS)}, д. {rng.randint(1, 120)}, "
            f"кв. {rng.randint(1, 300)}"
            for _ in range(200)
        ]
        params = {
            "last_m": self._pool(LAST_M),
            "last_f": self._pool(female_last),
            "first_m": self._pool(FIRST_M),
            "first_f": self._pool(FIRST_F),
            "middle_m": self._pool(MIDDLE_M),
            "middle_f": self._pool(MIDDLE_F),
            "sex_m": encrypt_text("male"),
            "sex_f": encrypt_text("female"),
            "birth": self._pool(birth_dates),
            "phone": self._pool(phones),
            "address": self._pool(addresses),
            "snils": self._pool([_snils(n) for n in range(100)]),
            "passport": self._pool([f"45{n % 100:02d} {100000 + n * 37:06d}" for n in range(100)]),
            "policy": self._pool([f"{7700000000000000 + n * 101}" for n in range(100)]),
            "departments": [department.pk for _, department in self.locations],
            "tag": self.tag,
        }
        pick = "(%({0})s::text[])[1 + (n * 2654435761 + {1}) %% cardinality(%({0})s::text[])]"
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO accounts_patientprofile (user_id, last_name, first_name, middle_name,
                    birth_date, sex, phone, address, snils, snils_index, passport, passport_index,
                    insurance_policy, identity_scan, department_id, created_at, updated_at)
                SELECT id,
                    CASE WHEN n %% 2 = 0 THEN {pick.format("last_f", 1)}
                         ELSE {pick.format("last_m", 1)} END,
                    CASE WHEN n %% 2 = 0 THEN {pick.format("first_f", 7)}
                         ELSE {pick.format("first_m", 7)} END,
                    CASE WHEN n %% 2 = 0 THEN {pick.format("middle_f", 13)}
                         ELSE {pick.format("middle_m", 13)} END,
                    {pick.format("birth", 17)},
                    CASE WHEN n %% 2 = 0 THEN %(sex_f)s ELSE %(sex_m)s END,
                    {pick.format("phone", 23)},
                    {pick.format("address", 29)},
                    CASE WHEN n %% 5 <> 0 THEN {pick.format("snils", 31)} ELSE '' END,
                    CASE WHEN n %% 5 <> 0 THEN encode(sha256(convert_to(
                        %(tag)s || '|snils|' || n, 'UTF8')), 'hex') END,
                    CASE WHEN n %% 10 < 7 THEN {pick.format("passport", 37)} ELSE '' END,
                    CASE WHEN n %% 10 < 7 THEN encode(sha256(convert_to(
                        %(tag)s || '|passport|' || n, 'UTF8')), 'hex') END,
                    CASE WHEN n %% 10 <> 9 THEN {pick.format("policy", 41)} ELSE '' END,
                    '',
                    CASE WHEN n %% 4 = 0 THEN NULL
                         ELSE (%(departments)s::bigint[])[1 + n %% cardinality(
                             %(departments)s::bigint[])] END,
                    now() - (n %% 1500) * interval '1 day',
                    now()
                FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n
                      FROM scale_new_patient) AS u
                """,  # noqa: S608 - the format() parts are fixed names
                params,
            )
            cursor.execute(
                """
                CREATE TEMP TABLE scale_patient ON COMMIT DROP AS
                SELECT row_number() OVER (ORDER BY p.id) - 1 AS n, p.id
                FROM accounts_patientprofile p JOIN scale_new_patient u ON u.id = p.user_id
                """
            )
            cursor.execute("ALTER TABLE scale_patient ADD PRIMARY KEY (n)")
            cursor.execute("ANALYZE scale_patient")

    # --- appointments ------------------------------------------------------------------

    def _appointments(self, doctors: list[dict], count: int, days: int, ahead: int) -> int:
        today = timezone.localdate()
        first_day = today - timedelta(days=days - ahead)
        last_day = today + timedelta(days=ahead - 1)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                CREATE TEMP TABLE scale_doctor (idx int, id bigint, location_id bigint, tz text,
                    shift int, type_id bigint, video_type_id bigint, price numeric,
                    video_price numeric, vac_start date, vac_end date) ON COMMIT DROP
                """
            )
            cursor.executemany(
                "INSERT INTO scale_doctor VALUES (%(idx)s, %(id)s, %(location_id)s, %(tz)s, "
                "%(shift)s, %(type_id)s, %(video_type_id)s, %(price)s, %(video_price)s, "
                "%(vac_start)s, %(vac_end)s)",
                doctors,
            )
            # Local start times of each shift's slots, the break left out.
            cursor.execute("CREATE TEMP TABLE scale_slot_time (shift int, t time) ON COMMIT DROP")
            slot_times = []
            for shift, (start, end, break_start, break_end) in enumerate(SHIFTS):
                minute, last = start.hour * 60 + start.minute, end.hour * 60 + end.minute
                while minute + SLOT_MINUTES <= last:
                    t = clock(minute // 60, minute % 60)
                    if not (break_start <= t < break_end):
                        slot_times.append((shift, t))
                    minute += SLOT_MINUTES
            cursor.executemany("INSERT INTO scale_slot_time VALUES (%s, %s)", slot_times)
            # The grid: one row per free cell of every doctor's calendar, numbered.
            cursor.execute(
                """
                CREATE TEMP TABLE scale_grid ON COMMIT DROP AS
                SELECT row_number() OVER (ORDER BY d.idx, g.day, s.t) AS rn, d.idx,
                       (g.day::date + s.t) AT TIME ZONE d.tz AS starts
                FROM scale_doctor d
                CROSS JOIN generate_series(%s::timestamp, %s::timestamp, interval '1 day') g(day)
                JOIN scale_slot_time s ON s.shift = d.shift
                WHERE extract(isodow FROM g.day) < 6
                  AND NOT (g.day::date BETWEEN d.vac_start AND d.vac_end)
                """,
                [first_day, last_day],
            )
            cursor.execute("SELECT count(*) FROM scale_grid")
            cells = cursor.fetchone()[0]
            if count > cells:
                raise CommandError(
                    f"{count} appointments do not fit in {cells} slots of {len(doctors)} doctors "
                    f"over {days} days: add doctors or days."
                )
            # Exactly `count` distinct cells, scattered: rn -> rn * step mod cells is a
            # permutation of the cells when step and cells are coprime.
            step = next(p for p in range(1_000_003, 10_000_000, 2) if _coprime(p, cells))
            patients = self._scalar(cursor, "SELECT count(*) FROM scale_patient")
            chunk = 200_000
            for low in range(1, cells + 1, chunk):
                cursor.execute(
                    """
                    INSERT INTO scheduling_appointment (patient_id, doctor_id, location_id,
                        consultation_type_id, during, seat, status, hold_expires_at, source,
                        price, currency, cancellation_fee, cancellation_reason, patient_note,
                        public_id, created_at, updated_at)
                    SELECT p.id, d.id, d.location_id,
                        CASE WHEN g.video THEN d.video_type_id ELSE d.type_id END,
                        tstzrange(g.starts, g.starts + %(slot)s * interval '1 minute', '[)'),
                        1,
                        CASE WHEN g.starts < now() THEN
                            CASE WHEN g.h < 85 THEN 'completed'
                                 WHEN g.h < 93 THEN 'cancelled' ELSE 'no_show' END
                        ELSE
                            CASE WHEN g.h < 88 THEN 'booked'
                                 WHEN g.h < 95 THEN 'confirmed' ELSE 'cancelled' END
                        END,
                        NULL,
                        CASE WHEN g.h %% 3 = 0 THEN 'reception' ELSE 'portal' END,
                        CASE WHEN g.video THEN d.video_price ELSE d.price END,
                        'RUB', 0, '', '', gen_random_uuid(),
                        g.starts - (1 + g.rn %% 30) * interval '1 day', now()
                    FROM (
                        SELECT rn, idx, starts, (rn * 7 + idx * 13) %% 100 AS h,
                               (rn * 11) %% 100 < 15 AS video
                        FROM scale_grid
                        WHERE rn >= %(low)s AND rn < %(high)s
                          AND (rn * %(step)s) %% %(cells)s < %(count)s
                    ) g
                    JOIN scale_doctor d ON d.idx = g.idx
                    JOIN scale_patient p ON p.n = (g.rn * 104729) %% %(patients)s
                    ORDER BY d.id, g.starts
                    """,
                    {
                        "slot": SLOT_MINUTES,
                        "low": low,
                        "high": low + chunk,
                        "step": step,
                        "cells": cells,
                        "count": count,
                        "patients": patients,
                    },
                )
            made = self._scalar(
                cursor,
                "SELECT count(*) FROM scheduling_appointment a JOIN scale_doctor d ON d.id = "
                "a.doctor_id",
            )
        self.stdout.write(f"  {made} appointments in {cells} grid cells ({made / cells:.0%} full)")
        return made

    def _care_grants(self, doctors: list[dict]) -> int:
        """What booking does for each appointment: the doctor may open the patient's record."""
        from django.contrib.auth.models import Permission
        from django.contrib.contenttypes.models import ContentType

        from accounts.models import PatientProfile
        from accounts.policies import RECORD_PERMISSION_CODENAME

        content_type = ContentType.objects.get_for_model(PatientProfile)
        permission = Permission.objects.get(
            content_type=content_type, codename=RECORD_PERMISSION_CODENAME
        )
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO guardian_userobjectpermission (object_pk, content_type_id,
                    permission_id, user_id)
                SELECT DISTINCT a.patient_id::text, %s, %s, a.doctor_id
                FROM scheduling_appointment a JOIN scale_doctor d ON d.id = a.doctor_id
                WHERE a.status <> 'cancelled'
                ON CONFLICT DO NOTHING
                """,
                [content_type.pk, permission.pk],
            )
            return cursor.rowcount

    @staticmethod
    def _scalar(cursor, sql: str) -> int:  # noqa: ANN001
        cursor.execute(sql)
        return int(cursor.fetchone()[0])


def _coprime(a: int, b: int) -> bool:
    from math import gcd

    return gcd(a, b) == 1
