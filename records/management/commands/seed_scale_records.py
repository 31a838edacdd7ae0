"""Benchmark data at DESIGN.md's scale, records' part: lab reports and observations of
the scale patients, built in SQL.

manage.py seed_scale_records [--reports N] [--heavy-patients 10] [--heavy-reports 500]

Usually run by `manage.py seed_scale` (clinic/) right after `seed_scale_scheduling`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from accounts.models import Role
from clinic.scale import SCALE_PASSWORD, refuse_production
from records.catalogue import (
    CHOLESTEROL,
    CREATININE,
    GLUCOSE,
    HBA1C,
    HDL,
    HEMOGLOBIN,
    LDL,
    LEUKOCYTES,
    PLATELETS,
    TRIGLYCERIDES,
    TSH,
    Analyte,
)
from records.models import LabReport, Observation, ReleasePolicy, TestType
from records.services import derive_interpretation

# Reports this command makes carry this source (and no external id), so they can be
# told from real ones and counted.
SCALE_SOURCE = "seed_scale"
REPORTS_PER_PATIENT = 5  # 500k reports for 100k patients
VALUES_PER_ANALYTE = 64  # the ciphertext pool of each analyte (see HELP)
CHUNK_REPORTS = 50_000  # reports per INSERT (and their ~500k observations)

A, D = Analyte, Decimal


def _a(code: str, name: str, unit: str, low: str | None, high: str | None) -> Analyte:
    return A(code, name, unit, None if low is None else D(low), None if high is None else D(high))


# Three panels of ten analytes each (real LOINC codes, adult ranges in the units Russian
# laboratories report): every report has ten observations, 5M for 500k reports.
CBC = (
    HEMOGLOBIN,
    LEUKOCYTES,
    PLATELETS,
    _a("789-8", "Erythrocytes [#/volume] in Blood by Automated count", "10*12/L", "3.8", "5.5"),
    _a("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", "35", "49"),
    _a("787-2", "MCV [Entitic volume] by Automated count", "fL", "80", "100"),
    _a("785-6", "MCH [Entitic mass] by Automated count", "pg", "27", "34"),
    _a("786-4", "MCHC [Mass/volume] by Automated count", "g/L", "300", "380"),
    _a("788-0", "Erythrocyte distribution width [Ratio] by Automated count", "%", "11.5", "14.5"),
    _a("30341-2", "Erythrocyte sedimentation rate", "mm/h", "2", "20"),
)
BIOCHEMISTRY = (
    GLUCOSE,
    CREATININE,
    _a("22664-7", "Urea [Moles/volume] in Serum or Plasma", "mmol/L", "2.5", "8.3"),
    _a("14631-6", "Bilirubin.total [Moles/volume] in Serum or Plasma", "umol/L", "3.4", "20.5"),
    _a("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
       "U/L", None, "41"),
    _a("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
       "U/L", None, "40"),
    _a("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", "3.5", "5.1"),
    _a("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", "136", "145"),
    _a("2885-2", "Protein [Mass/volume] in Serum or Plasma", "g/L", "64", "83"),
    _a("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", None, "5"),
)  # fmt: skip
CHECKUP = (
    CHOLESTEROL,
    HDL,
    LDL,
    TRIGLYCERIDES,
    HBA1C,
    TSH,
    _a("3024-7", "Thyroxine (T4) free [Moles/volume] in Serum or Plasma", "pmol/L", "9", "19"),
    _a("2276-4", "Ferritin [Mass/volume] in Serum or Plasma", "ug/L", "20", "250"),
    _a("14798-3", "Iron [Moles/volume] in Serum or Plasma", "umol/L", "9", "30.4"),
    _a("14685-2", "Cobalamin (Vitamin B12) [Moles/volume] in Serum or Plasma", "pmol/L",
       "145", "569"),
)  # fmt: skip


@dataclass(frozen=True)
class Panel:
    code: str
    name_ru: str
    name_en: str
    loinc_code: str
    release_policy: str
    analytes: tuple[Analyte, ...]


PANELS = (
    Panel("scale-cbc", "Общий анализ крови (развёрнутый)", "Complete blood count (full)",
          "58410-2", ReleasePolicy.IMMEDIATE, CBC),
    Panel("scale-biochemistry", "Биохимический анализ крови", "Blood chemistry panel",
          "24323-8", ReleasePolicy.IMMEDIATE, BIOCHEMISTRY),
    Panel("scale-checkup", "Профилактический профиль", "Check-up profile",
          "", ReleasePolicy.AFTER_REVIEW, CHECKUP),
)  # fmt: skip

PERFORMERS = [
    "Лаборатория клиники, ул. Тверская, 12",
    "ООО «Гемотест», Москва",
    "Лаборатория «ИНВИТРО», Екатеринбург",
    "Clinic laboratory, 1 New Street, London",
]
CONCLUSIONS = [
    "Образец гемолизирован, рекомендуется пересдача.",
    "Результаты выше референсных значений подтверждены повторным исследованием.",
]
COMMENTS = [
    "Результаты в пределах нормы. Контроль через год.",
    "Есть отклонения: обсудим на приёме, запишитесь к врачу.",
    "Динамика хорошая. Продолжайте лечение.",
    "Повторите анализ через 3 месяца.",
]

HELP = """\
Add lab reports with observations to the scale patients that have none yet (those of
the latest seed_scale_scheduling batch): --reports in all (default
5 per patient: 500,000 for 100,000 patients), each a panel of ten
analytes (5,000,000 observations), issued over the last --days days. Every patient gets
one report, the rest are spread over them, and --heavy-patients patients get
--heavy-reports reports each (a chronic patient's long history, for the results pages'
benchmark). Statuses, review and release follow the portal's rules: complete reports of
tests released at once are released; 95 % of those released after review are reviewed
with a comment and released, the rest wait in the review queue; preliminary and
cancelled reports are not released. Built in SQL (INSERT ... SELECT over
generate_series, 50,000 reports and their observations per statement) in one
transaction.

Encryption shortcut, for benchmark data only: every value is encrypted by the models'
own fields (Observation.value_quantity and .interpretation, LabReport.performer,
.conclusion and .review_comment), but not once per row: encrypting 5M values and their
flags one by one costs ~25 us each (~4 minutes of one core, measured), more than the
whole SQL load. So each analyte has a pool of 64 realistic values
(80 % within the reference range, 10 % above, 10 % below; the flag derived from the
range as the services do) encrypted once, and rows reuse those ciphertexts. Equal
plaintexts then share a ciphertext, which real data must never do; here it only makes
the rows the right size and decryptable.

Refuses production. Running it again adds nothing unless a new batch of scale patients
is there (it says so)."""


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser):  # noqa: ANN001, ANN201
        parser.add_argument(
            "--reports",
            type=int,
            default=None,
            help=f"Lab reports in all (default: {REPORTS_PER_PATIENT} per new scale patient).",
        )
        parser.add_argument(
            "--heavy-patients",
            type=int,
            default=None,
            help="Patients with a long history (default: 10, fewer for small batches).",
        )
        parser.add_argument(
            "--heavy-reports",
            type=int,
            default=None,
            help="Reports of each heavy patient (default: 500, fewer for small batches).",
        )
        parser.add_argument(
            "--days", type=int, default=5 * 365, help="Reports are issued over this many days."
        )

    def handle(self, *args, **options):  # noqa: ANN001, ANN201
        refuse_production("seed_scale_records")
        self.started = time.perf_counter()
        patients = self._new_patients_count()
        scale_patients = self._scale_patients_count()
        if scale_patients == 0:
            raise CommandError(
                "There are no scale patients: run seed_scale (or seed_scale_scheduling) first."
            )
        if patients == 0:
            raise CommandError(
                f"All {scale_patients} scale patients already have lab reports: "
                "seed_scale_records adds reports to a new batch of scale patients only. "
                "Run seed_scale for a new batch, or use a fresh scratch database."
            )
        reports = options["reports"]
        reports = REPORTS_PER_PATIENT * patients if reports is None else reports
        if reports < 1 or options["days"] < 1:
            raise CommandError("--reports and --days must be at least 1.")
        heavy, per_heavy = self._heavy(options, patients, reports)
        self.rng = random.Random(20240602)  # noqa: S311 - benchmark data
        with transaction.atomic():
            with connection.cursor() as cursor:
                # Check foreign keys per statement: deferred checks of millions of rows
                # would queue in memory until the commit.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            with self.phase("test types and encrypted value pools"):
                types = self._test_types()
                pools = self._pools()
            with self.phase(f"{patients} patients without reports"):
                self._patients_table()
            made = observations = 0
            for low in range(0, reports, CHUNK_REPORTS):
                high = min(reports, low + CHUNK_REPORTS)
                with self.phase(f"reports {low + 1}-{high} with their observations"):
                    made_now, observed_now = self._chunk(
                        low, high, patients, heavy, per_heavy, options["days"], types, pools
                    )
                made += made_now
                observations += observed_now
        with self.phase("analyze"), connection.cursor() as cursor:
            for table in ("records_labreport", "records_observation"):
                cursor.execute(f"ANALYZE {table}")  # noqa: S608 - fixed names
        self.stdout.write(
            self.style.SUCCESS(
                f"Scale records ready: {made} lab reports with {observations} observations "
                f"for {patients} patients ({heavy} with {per_heavy} reports each) in "
                f"{time.perf_counter() - self.started:.1f} s."
            )
        )

    @contextmanager
    def phase(self, label: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.stdout.write(f"{label}: {time.perf_counter() - started:.1f} s")

    # --- who gets reports -------------------------------------------------------------

    _NEW_PATIENTS = """
        FROM accounts_patientprofile p JOIN accounts_user u ON u.id = p.user_id
        WHERE u.password = %s AND u.role = %s
          AND NOT EXISTS (SELECT 1 FROM records_labreport r WHERE r.patient_id = p.id)
    """

    def _new_patients_count(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*) {self._NEW_PATIENTS}",  # noqa: S608 - fixed text
                [SCALE_PASSWORD, Role.PATIENT],
            )
            return int(cursor.fetchone()[0])

    def _scale_patients_count(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM accounts_user WHERE password = %s AND role = %s",
                [SCALE_PASSWORD, Role.PATIENT],
            )
            return int(cursor.fetchone()[0])

    @staticmethod
    def _heavy(options: dict, patients: int, reports: int) -> tuple[int, int]:
        heavy, per_heavy = options["heavy_patients"], options["heavy_reports"]
        if heavy is None:
            heavy = min(10, max(1, patients // 100))
        if per_heavy is None:
            per_heavy = min(500, reports // (10 * max(heavy, 1)))
        heavy = min(heavy, patients)
        if heavy < 0 or per_heavy < 0:
            raise CommandError("--heavy-patients and --heavy-reports cannot be negative.")
        if heavy * per_heavy > reports:
            raise CommandError(
                f"{heavy} heavy patients x {per_heavy} reports do not fit in --reports "
                f"{reports}: ask for more reports or fewer heavy ones."
            )
        return heavy, per_heavy

    def _patients_table(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                CREATE TEMP TABLE scale_rec_patient ON COMMIT DROP AS
                SELECT row_number() OVER (ORDER BY p.id) - 1 AS n, p.id
                {self._NEW_PATIENTS}
                """,  # noqa: S608 - fixed text
                [SCALE_PASSWORD, Role.PATIENT],
            )
            cursor.execute("ALTER TABLE scale_rec_patient ADD PRIMARY KEY (n)")
            cursor.execute("ANALYZE scale_rec_patient")

    # --- reference data and pools -----------------------------------------------------

    def _test_types(self) -> list[tuple[int, str]]:
        """(id, release policy) of each panel's test type, created if missing."""
        found = []
        for panel in PANELS:
            test_type, _created = TestType.objects.get_or_create(
                code=panel.code,
                defaults={
                    "name_ru": panel.name_ru,
                    "name_en": panel.name_en,
                    "loinc_code": panel.loinc_code,
                    "release_policy": panel.release_policy,
                },
            )
            found.append((test_type.pk, test_type.release_policy))
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE scale_rec_type (idx int PRIMARY KEY, id bigint, "
                "after_review boolean) ON COMMIT DROP"
            )
            cursor.executemany(
                "INSERT INTO scale_rec_type VALUES (%s, %s, %s)",
                [
                    (i, pk, policy == ReleasePolicy.AFTER_REVIEW)
                    for i, (pk, policy) in enumerate(found)
                ],
            )
            cursor.execute(
                "CREATE TEMP TABLE scale_rec_analyte (type_id bigint, sort_order int, "
                "pool_base int, loinc text, name text, unit text, low numeric, high numeric) "
                "ON COMMIT DROP"
            )
            rows, base = [], 0
            for (pk, _policy), panel in zip(found, PANELS, strict=True):
                for order, analyte in enumerate(panel.analytes):
                    rows.append(
                        (pk, order, base, analyte.loinc_code, analyte.name, analyte.unit,
                         analyte.low, analyte.high)
                    )  # fmt: skip
                    base += VALUES_PER_ANALYTE
            cursor.executemany(
                "INSERT INTO scale_rec_analyte VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows
            )
        return found

    def _sample(self, analyte: Analyte) -> Decimal:
        rng = self.rng
        reference = analyte.high if analyte.high is not None else analyte.low
        places = 0 if reference >= 100 else 1 if reference >= 5 else 2
        low = analyte.low if analyte.low is not None else analyte.high * D("0.4")
        high = analyte.high if analyte.high is not None else analyte.low * D("2.5")
        roll = rng.random()
        if roll < 0.8:
            lo, hi = low, high
        elif roll < 0.9:
            lo, hi = high, high * D("1.5")
        else:
            lo, hi = low * D("0.6"), low
        value = lo + (hi - lo) * D(str(round(rng.random(), 6)))
        return value.quantize(D(1).scaleb(-places))

    def _pools(self) -> dict[str, object]:
        """Ciphertexts encrypted by the models' own fields, once: VALUES_PER_ANALYTE per
        analyte (value and its flag at the same index), and a few report texts."""
        value_field = Observation._meta.get_field("value_quantity")
        flag_field = Observation._meta.get_field("interpretation")
        report_field = LabReport._meta.get_field("performer")
        values, flags = [], []
        started = time.perf_counter()
        for panel in PANELS:
            for analyte in panel.analytes:
                for _ in range(VALUES_PER_ANALYTE):
                    value = self._sample(analyte)
                    flag = derive_interpretation(value, analyte.low, analyte.high)
                    values.append(value_field.get_prep_value(value))
                    flags.append(flag_field.get_prep_value(flag))
        encrypt_us = (time.perf_counter() - started) / (2 * len(values)) * 1e6
        self.stdout.write(
            f"  {2 * len(values)} values encrypted, {encrypt_us:.0f} us each: one by one, "
            f"5M observations would take ~{encrypt_us * 10e6 / 1e6 / 60:.0f} min of encryption"
        )
        return {
            "values": values,
            "flags": flags,
            "performers": [report_field.get_prep_value(p) for p in PERFORMERS],
            "conclusions": [report_field.get_prep_value(c) for c in CONCLUSIONS],
            "comments": [report_field.get_prep_value(c) for c in COMMENTS],
        }

    # --- reports and observations ---------------------------------------------------

    def _chunk(
        self,
        low: int,
        high: int,
        patients: int,
        heavy: int,
        per_heavy: int,
        days: int,
        types: list,
        pools: dict,
    ) -> tuple[int, int]:
        """Reports low..high-1 (numbered over the whole run) and their observations.

        Report n goes to: a heavy patient (n < heavy x per_heavy), else patient
        n - heavy x per_heavy while every patient has none yet, else a scattered one."""
        pick = "(%({0})s::text[])[1 + ({1}) %% cardinality(%({0})s::text[])]"
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS scale_rec_report (id bigint PRIMARY KEY, "
                "test_type_id bigint, status text) ON COMMIT DROP"
            )
            cursor.execute("TRUNCATE scale_rec_report")
            cursor.execute(
                f"""
                WITH created AS (
                    INSERT INTO records_labreport (public_id, patient_id, visit_id,
                        test_type_id, ordered_by_id, status, collected_at, issued_at,
                        performer, conclusion, source, external_id, review_state,
                        review_comment, reviewed_by_id, reviewed_at, released_to_patient_at,
                        released_by_id, created_at, updated_at)
                    SELECT gen_random_uuid(), p.id, NULL, t.id, NULL, g.status,
                        g.issued - interval '6 hours', g.issued,
                        {pick.format("performers", "g.h")},
                        CASE WHEN g.h %% 20 = 7 THEN {pick.format("conclusions", "g.h")}
                             ELSE '' END,
                        %(source)s, '',
                        CASE WHEN NOT t.after_review OR g.status NOT IN ('final', 'amended')
                                THEN 'not_required'
                             WHEN g.pending THEN 'pending' ELSE 'reviewed' END,
                        CASE WHEN t.after_review AND g.status IN ('final', 'amended')
                                  AND NOT g.pending
                             THEN {pick.format("comments", "g.h")} ELSE '' END,
                        CASE WHEN t.after_review AND g.status IN ('final', 'amended')
                                  AND NOT g.pending
                             THEN g.doctor END,
                        CASE WHEN t.after_review AND g.status IN ('final', 'amended')
                                  AND NOT g.pending
                             THEN g.issued + interval '1 day' END,
                        CASE WHEN g.status NOT IN ('final', 'amended') THEN NULL
                             WHEN NOT t.after_review THEN g.issued
                             WHEN g.pending THEN NULL
                             ELSE g.issued + interval '1 day' END,
                        CASE WHEN t.after_review AND g.status IN ('final', 'amended')
                                  AND NOT g.pending
                             THEN g.doctor END,
                        g.issued, now()
                    FROM (
                        SELECT n, h,
                            CASE WHEN n < %(heavy_total)s THEN n / %(per_heavy)s
                                 WHEN n - %(heavy_total)s < %(patients)s
                                     THEN n - %(heavy_total)s
                                 ELSE (n * 104729) %% %(patients)s END AS pn,
                            (n * 40503 + n / 7) %% %(types)s AS ti,
                            CASE WHEN h %% 50 = 1 THEN 'preliminary'
                                 WHEN h %% 100 = 3 THEN 'cancelled'
                                 WHEN h %% 100 IN (5, 15, 25) THEN 'amended'
                                 ELSE 'final' END AS status,
                            (h / 100) %% 20 = 0 AS pending,
                            (%(doctors)s::bigint[])[1 + h %% greatest(cardinality(
                                %(doctors)s::bigint[]), 1)] AS doctor,
                            now() - ((h / 7) %% (%(days)s * 1440)) * interval '1 minute'
                                AS issued
                        FROM (
                            SELECT n, (n * 2654435761) %% 4294967291 AS h
                            FROM generate_series(%(low)s::bigint, %(high)s::bigint - 1) AS n
                        ) AS numbered
                    ) AS g
                    JOIN scale_rec_patient p ON p.n = g.pn
                    JOIN scale_rec_type t ON t.idx = g.ti
                    RETURNING id, test_type_id, status
                )
                INSERT INTO scale_rec_report (id, test_type_id, status)
                SELECT id, test_type_id, status FROM created
                """,  # noqa: S608 - the format() parts are fixed names
                {
                    **pools,
                    "source": SCALE_SOURCE,
                    "heavy_total": heavy * per_heavy,
                    "per_heavy": max(per_heavy, 1),
                    "patients": patients,
                    "types": len(types),
                    "doctors": self._doctors(),
                    "days": days,
                    "low": low,
                    "high": high,
                },
            )
            made = cursor.rowcount
            cursor.execute(
                """
                INSERT INTO records_observation (report_id, loinc_code, name, value_type,
                    value_quantity, value_text, value_code, value_display, unit,
                    reference_low, reference_high, reference_text, interpretation, note,
                    status, sort_order)
                SELECT r.id, a.loinc, a.name, 'quantity',
                    CASE WHEN r.status = 'cancelled' THEN NULL
                         ELSE (%(values)s::text[])[a.pool_base + k.k + 1] END,
                    '', '', '', a.unit, a.low, a.high, '',
                    CASE WHEN r.status = 'cancelled' THEN ''
                         ELSE (%(flags)s::text[])[a.pool_base + k.k + 1] END,
                    '', r.status, a.sort_order
                FROM scale_rec_report r
                JOIN scale_rec_analyte a ON a.type_id = r.test_type_id
                CROSS JOIN LATERAL (
                    SELECT ((r.id * 2654435761 + a.sort_order * 40503) %% %(pool)s)::int AS k
                ) AS k
                """,
                {"values": pools["values"], "flags": pools["flags"], "pool": VALUES_PER_ANALYTE},
            )
            return made, cursor.rowcount

    def _doctors(self) -> list[int]:
        if not hasattr(self, "_doctor_ids"):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT id FROM accounts_user WHERE password = %s AND role = %s ORDER BY id "
                    "LIMIT 1000",
                    [SCALE_PASSWORD, Role.DOCTOR],
                )
                self._doctor_ids = [row[0] for row in cursor.fetchall()]
        return self._doctor_ids
