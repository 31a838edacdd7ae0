"""DESIGN.md's data scale for benchmarks, every app's part: 100k patients, 1M
appointments, 500k lab reports with 5M observations.

manage.py seed_scale [--patients 100000] [--doctors 200] [--appointments 1000000]
    [--reports 500000] [--yes]

The project package may use every app, so the command that runs them all lives here;
each app builds its own part (scheduling may not import records, nor records
scheduling): `seed_scale_scheduling`, then `seed_scale_records`.
"""

from __future__ import annotations

import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from clinic.scale import refuse_production

HELP = """\
Build DESIGN.md's data scale in a scratch database, for benchmarks: runs
seed_scale_scheduling (patients, doctors with weekly templates, appointments over two
years and the care grants they give) and then seed_scale_records (lab reports of those
patients, ten observations each: by default 5 per patient, so 500,000 reports and
5,000,000 observations for 100,000 patients; --reports 0 skips them). Both build rows
in SQL and encrypt a pool of values once, reusing the ciphertexts (see each command's
--help: benchmark data only). Full scale takes several minutes; scale down with
--patients, --doctors, --appointments and --reports. Each run adds a new batch of
patients (with their own reports). Refuses production, and a database with users it did
not create unless --yes."""


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser):  # noqa: ANN001, ANN201
        scheduling = parser.add_argument_group("scheduling (seed_scale_scheduling)")
        scheduling.add_argument("--patients", type=int, default=100_000)
        scheduling.add_argument("--doctors", type=int, default=200)
        scheduling.add_argument("--appointments", type=int, default=1_000_000)
        scheduling.add_argument(
            "--days", type=int, default=730, help="Length of the appointment period (days)."
        )
        scheduling.add_argument(
            "--days-ahead",
            type=int,
            default=56,
            help="How much of the period lies in the future (days from today).",
        )
        scheduling.add_argument(
            "--no-care-grants",
            action="store_true",
            help="Skip the per (doctor, patient) record-access grants.",
        )
        scheduling.add_argument(
            "--yes", action="store_true", help="Run even though the database has other users."
        )
        records = parser.add_argument_group("records (seed_scale_records)")
        records.add_argument(
            "--reports",
            type=int,
            default=None,
            help="Lab reports in all, ten observations each (default: 5 per patient; 0: none).",
        )
        records.add_argument("--heavy-patients", type=int, default=None)
        records.add_argument("--heavy-reports", type=int, default=None)
        records.add_argument(
            "--report-days", type=int, default=5 * 365, help="Reports are issued over these days."
        )

    def handle(self, *args, **options):  # noqa: ANN001, ANN201
        refuse_production("seed_scale")
        if options["reports"] is not None and options["reports"] < 0:
            raise CommandError("--reports cannot be negative.")
        started = time.perf_counter()
        call_command(
            "seed_scale_scheduling",
            patients=options["patients"],
            doctors=options["doctors"],
            appointments=options["appointments"],
            days=options["days"],
            days_ahead=options["days_ahead"],
            no_care_grants=options["no_care_grants"],
            yes=options["yes"],
            stdout=self.stdout,
            stderr=self.stderr,
        )
        if options["reports"] != 0:
            try:
                call_command(
                    "seed_scale_records",
                    reports=options["reports"],
                    heavy_patients=options["heavy_patients"],
                    heavy_reports=options["heavy_reports"],
                    days=options["report_days"],
                    stdout=self.stdout,
                    stderr=self.stderr,
                )
            except CommandError as exc:
                raise CommandError(
                    f"{exc} The scheduling part is in place; run seed_scale_records alone "
                    "to add the reports."
                ) from exc
        self.stdout.write(
            self.style.SUCCESS(f"seed_scale done in {time.perf_counter() - started:.1f} s.")
        )
