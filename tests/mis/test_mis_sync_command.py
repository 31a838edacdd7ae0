"""`manage.py mis_sync --once` prints counts per type; with the MIS down it says so and
fails; without an MIS configured it refuses."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from records.catalogue import test_types_ensure as ensure_test_types
from records.models import LabReport
from tests import factories
from tests.mis import fhir_data as fd

pytestmark = pytest.mark.django_db


def _rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        parts = line.split()
        if parts and parts[0][:1].isupper() and len(parts) >= 6 and parts[1].isdigit():
            rows[parts[0]] = parts[1:6]
    return rows


def test_once_pulls_every_type_and_prints_counts(mis):
    ensure_test_types()
    factories.make_patient(snils=fd.SNILS_A)
    mis.transaction(
        [
            fd.patient("mis-anna", snils=fd.SNILS_A),
            fd.practitioner("pr-1"),
            *fd.cbc("rep-1", "mis-anna"),
            *fd.cbc("rep-2", "mis-anna"),
        ]
    )
    out = StringIO()
    call_command("mis_sync", "--once", stdout=out)
    rows = _rows(out.getvalue())

    assert set(rows) == {
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Schedule",
        "Slot",
        "Appointment",
        "DiagnosticReport",
        "DocumentReference",
    }
    # created updated unchanged skipped quarantined
    assert rows["Patient"] == ["1", "0", "0", "0", "0"]
    assert rows["Practitioner"] == ["1", "0", "0", "0", "0"]
    assert rows["DiagnosticReport"] == ["2", "0", "0", "0", "0"]
    assert LabReport.objects.count() == 2

    again = StringIO()
    call_command("mis_sync", "--once", stdout=again)
    assert _rows(again.getvalue())["DiagnosticReport"][:2] == ["0", "0"]


def test_mis_down_is_reported_and_the_command_fails(mis_down):
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("mis_sync", "--once", "--type", "Patient", stdout=out)
    assert "cannot reach the MIS" in out.getvalue()


def test_without_an_mis_the_command_refuses(settings, db):
    settings.MIS_FHIR_BASE_URL = ""
    with pytest.raises(CommandError, match="MIS_FHIR_BASE_URL"):
        call_command("mis_sync", "--once")
