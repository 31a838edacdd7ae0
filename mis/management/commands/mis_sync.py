"""`manage.py mis_sync --once`: pull every resource type from the MIS once, now, and
print the counts per type (for operators and tests). Without --once it does the same
(there is no daemon mode: the beat sweep runs the pulls every minute)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from mis import services_sync
from mis.fhir.client import FhirClient, MisNotConfigured


class Command(BaseCommand):
    help = "Pull every resource type from the MIS (FHIR) once and print counts per type."

    def add_arguments(self, parser):  # noqa: ANN001, ANN201
        parser.add_argument("--once", action="store_true", help="pull each type once (default)")
        parser.add_argument(
            "--type",
            action="append",
            dest="types",
            choices=services_sync.PULL_ORDER,
            help="only this resource type (repeatable)",
        )
        parser.add_argument(
            "--page-size", type=int, default=services_sync.PAGE_SIZE, help="_count per page"
        )

    def handle(self, *args, **options):  # noqa: ANN002, ANN003, ANN201
        try:
            client = FhirClient.from_settings()
        except MisNotConfigured as exc:
            raise CommandError(f"{exc} (set MIS_FHIR_BASE_URL)") from exc
        types = options["types"] or list(services_sync.PULL_ORDER)
        failed = False
        self.stdout.write(f"MIS {client.base_url}")
        header = (
            f"{'type':<20}{'created':>9}{'updated':>9}{'unchanged':>11}"
            f"{'skipped':>9}{'quarantined':>13}  error"
        )
        self.stdout.write(header)
        for resource_type in services_sync.PULL_ORDER:
            if resource_type not in types:
                continue
            cursor = services_sync.sync_pull(
                resource_type=resource_type,
                client=client,
                page_size=options["page_size"],
                force=True,
            )
            if cursor is None:
                self.stdout.write(f"{resource_type:<20} busy: another pull of this type is running")
                continue
            failed = failed or bool(cursor.last_error)
            self.stdout.write(
                f"{resource_type:<20}{cursor.created_count:>9}{cursor.updated_count:>9}"
                f"{cursor.unchanged_count:>11}{cursor.skipped_count:>9}"
                f"{cursor.quarantined_count:>13}  {cursor.last_error[:200]}"
            )
        if failed:
            raise CommandError("the MIS could not be read for some types (see error)")
