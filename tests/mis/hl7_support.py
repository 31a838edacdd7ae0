"""Helpers for the HL7 v2 tests: the shared fixture messages, links that make their
patients and doctors known to the portal, and reading an ACK back with hl7apy."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from mis.hl7.handlers.identity import patient_ids
from mis.hl7.parse import normalise, parse, read_header, split_messages
from mis.matching import link_set
from mis.models import LinkedKind

# /work/shared in this checkout, ../shared in CI.
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "hl7v2"
MS = FIXTURES / "microsoft-fhir-converter"
MOSCOW = ZoneInfo("Europe/Moscow")


def fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*.hl7") if p.is_file())


def fixture_text(name: str) -> str:
    path = next(p for p in fixture_files() if p.name == name)
    return normalise(path.read_bytes())


def messages_of(path: Path) -> list[str]:
    return split_messages(path.read_bytes().decode("utf-8-sig"))


def link_patient_of(message: str, profile) -> None:  # noqa: ANN001
    """Make the message's patient (PID-3) known: link its MIS id to `profile`."""
    parsed = parse(normalise(message), check=False)
    for pid in parsed.all("PID"):
        ids = patient_ids(pid)
        if ids.mis_id:
            link_set(
                kind=LinkedKind.PATIENT,
                system=parsed.header.system,
                value=ids.mis_id,
                object_id=profile.pk,
            )


def link_doctor(system: str, value: str, doctor) -> None:  # noqa: ANN001
    link_set(kind=LinkedKind.PRACTITIONER, system=system, value=value, object_id=doctor.pk)


def read_ack(text: str) -> dict[str, str]:
    """MSA-1, MSA-2 and the swapped MSH fields of a reply, after hl7apy accepts it."""
    from hl7apy import SUPPORTED_LIBRARIES
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    assert text.endswith("\r")
    header = read_header(text)
    if header.version in SUPPORTED_LIBRARIES:  # a reply echoes the message's version
        parse_message(text.rstrip("\r"), validation_level=VALIDATION_LEVEL.TOLERANT)
    msa = next(s for s in text.split("\r") if s.startswith("MSA"))
    fields = msa.split(header.encoding.field)
    return {
        "code": fields[1],
        "control_id": fields[2],
        "text": fields[3] if len(fields) > 3 else "",
        "type": header.message_type,
        "sending_application": header.msh.raw(3),
        "receiving_application": header.msh.raw(5),
        "receiving_facility": header.msh.raw(6),
    }


def next_weekday_at(hour: int, minute: int = 0, *, days_ahead: int = 3) -> datetime:
    """A time in the clinic's zone a few days ahead (inside make_working_week's hours)."""
    day = (datetime.now(MOSCOW) + timedelta(days=days_ahead)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=MOSCOW)


def hl7_ts(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S%z")
