"""ORU^R01: lab results, one report per OBR, through records' `lab_report_receive`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.text import slugify

from accounts.models import PatientProfile
from mis.hl7 import ack as ackmod
from mis.hl7.handlers.base import Outcome, Rejected
from mis.hl7.handlers.identity import doctor_for, matched_patient
from mis.hl7.parse import Parsed, Segment, parse_datetime
from mis.models import Hl7Reason, LinkedKind
from records.models import ReleasePolicy, TestType
from records.services import lab_report_receive

LOINC_SYSTEMS = frozenset({"LN", "LOINC", "2.16.840.1.113883.6.1"})
NOT_LOINC_SYSTEMS = frozenset(
    {
        "L",
        "LOCAL",
        "SCT",
        "SNM",
        "SNM3",
        "SNOMED",
        "SNOMEDCT",
        "I9",
        "I9C",
        "I10",
        "I10C",
        "ICD9",
        "ICD10",
        "C4",
        "C5",
        "CPT",
        "HCPCS",
        "NDC",
        "CVX",
        "UCUM",
        "ISO",
    }
)
LOINC_SHAPE = re.compile(r"^[0-9]{1,7}-[0-9]$")

# OBR-25 / OBX-11 result status (HL7 table 0123 / 0085) -> records' status.
REPORT_STATUS = {
    "F": "final",
    "C": "amended",
    "U": "final",
    "X": "cancelled",
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
    "I": "preliminary",
    "A": "preliminary",
    "O": "preliminary",
}
OBSERVATION_STATUS = {
    "F": "final",
    "C": "amended",
    "U": "final",
    "X": "cancelled",
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
    "I": "preliminary",
}
# Observations left out of the report: deleted (D), posted in error (W), not asked (N),
# order detail without a result (O).
SKIPPED_OBSERVATION_STATUSES = frozenset({"D", "W", "N", "O"})
# OBX-8 abnormal flags (HL7 table 0078) -> records' interpretation codes. Flags with no
# equivalent (susceptibility, "better", "worse"…) become "" and records derives the flag
# from the reference range.
FLAGS = {
    "N": "N",
    "H": "H",
    "L": "L",
    "HH": "HH",
    "LL": "LL",
    "A": "A",
    "AA": "A",
    ">": "HH",
    "<": "LL",
    "HU": "H",
    "LU": "L",
    "POS": "A",
    "DET": "A",
    "NEG": "N",
    "ND": "N",
}
TEXT_TYPES = frozenset({"ST", "TX", "FT", "ID", "IS"})
CODED_TYPES = frozenset({"CE", "CWE", "CNE", "CF"})
TIME_TYPES = frozenset({"DT", "DTM", "TS", "TM"})
NUMBER = r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)"
RANGE_PATTERNS = (
    (re.compile(rf"^\s*({NUMBER})\s*(?:-|–|—|_|to|\.\.)\s*({NUMBER})\s*$", re.I), "both"),
    (re.compile(rf"^\s*(?:<=|<|≤)\s*({NUMBER})\s*$"), "high"),
    (re.compile(rf"^\s*(?:>=|>|≥)\s*({NUMBER})\s*$"), "low"),
)


def loinc_check_digit_ok(code: str) -> bool:
    """LOINC codes end in a mod-10 check digit (the Luhn scheme)."""
    body, _, check = code.partition("-")
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d // 10 + d % 10
        total += d
    return (10 - total % 10) % 10 == int(check)


def loinc_of(seg: Segment, n: int) -> str:
    """The LOINC code of a CE/CWE field: the identifier or the alternate identifier whose
    coding system is LOINC; else an identifier shaped like LOINC with a valid check digit
    under a coding system that is not a known other one (old messages often put the
    analyte's name where the system belongs)."""
    pairs = [(seg.value(n, 1), seg.value(n, 3).upper()), (seg.value(n, 4), seg.value(n, 6).upper())]
    for code, system in pairs:
        if code and system in LOINC_SYSTEMS and LOINC_SHAPE.match(code):
            return code
    for code, system in pairs:
        if (
            code
            and LOINC_SHAPE.match(code)
            and loinc_check_digit_ok(code)
            and system not in NOT_LOINC_SYSTEMS
            and not system.startswith("99")
            and not system.startswith("HL7")
        ):
            return code
    return ""


def _name_of(seg: Segment, n: int) -> str:
    return seg.value(n, 2) or seg.value(n, 9) or seg.value(n, 5) or seg.value(n, 1)


def _fits_decimal(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -4 and len(value.as_tuple().digits) <= 14


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def reference_range(text: str) -> tuple[Decimal | None, Decimal | None]:
    """OBX-7 as (low, high): "4.3 to 6.2", "13-18", "70_105", "<5", ">10". Anything else
    (or a range records cannot hold) gives no numbers; the text is kept as it is."""
    for pattern, kind in RANGE_PATTERNS:
        match = pattern.match(text or "")
        if not match:
            continue
        numbers = [_number(g) for g in match.groups()]
        if any(n is None or not _fits_decimal(n) for n in numbers):
            return None, None
        if kind == "both":
            low, high = numbers
            return (low, high) if low <= high else (None, None)
        return (None, numbers[0]) if kind == "high" else (numbers[0], None)
    return None, None


@dataclass
class _Order:
    obr: Segment
    orc: Segment | None
    pid: Segment | None
    notes: list[str] = field(default_factory=list)
    results: list[tuple[Segment, list[str]]] = field(default_factory=list)


def _orders(parsed: Parsed) -> list[_Order]:
    orders: list[_Order] = []
    pid: Segment | None = None
    orc: Segment | None = None
    notes: list[str] | None = None
    for seg in parsed.segments:
        if seg.name == "PID":
            pid, orc, notes = seg, None, None
        elif seg.name == "ORC":
            orc = seg
        elif seg.name == "OBR":
            orders.append(_Order(obr=seg, orc=orc, pid=pid))
            notes = orders[-1].notes
        elif seg.name == "OBX" and orders:
            orders[-1].results.append((seg, []))
            notes = orders[-1].results[-1][1]
        elif seg.name == "NTE" and notes is not None:
            text = "\n".join(seg.text_of(3, rep) for rep in range(len(seg.repetitions(3))))
            if text.strip():
                notes.append(text.strip())
        elif seg.name in {"SPM", "PV1", "PV2", "CTI", "FT1"}:
            notes = None
    return orders


def _observation(obx: Segment, notes: list[str], position: str) -> dict[str, Any] | None:
    status_code = obx.value(11).upper()
    if status_code in SKIPPED_OBSERVATION_STATUSES:
        return None
    value_type = obx.value(2).upper()
    has_value = bool(obx.raw(5).strip())
    if not has_value and status_code in {"I", "P", "R", "S"}:
        return None  # pending: the value comes with a later message
    code = loinc_of(obx, 3)
    if not code:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            f"{position}: OBX-3 has no LOINC code; the portal files results by LOINC.",
            error_code=ackmod.ERR_TABLE_VALUE,
        )
    item: dict[str, Any] = {
        "loinc_code": code,
        "name": _name_of(obx, 3)[:200] or code,
        "unit": obx.value(6, 1)[:40],
        "reference_text": obx.text_of(7)[:200],
        "status": OBSERVATION_STATUS.get(status_code, "final"),
        "note": "\n".join(notes),
    }
    low, high = reference_range(obx.text_of(7))
    item["reference_low"], item["reference_high"] = low, high
    flag = obx.value(8).upper()
    item["interpretation"] = FLAGS.get(flag, "")
    if status_code == "X":
        item["status"] = "cancelled"
        return item
    if not has_value:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            f"{position}: OBX-5 (the value) is empty.",
            error_code=ackmod.ERR_REQUIRED_FIELD,
        )
    repeats = len(obx.repetitions(5))
    if value_type in {"NM", "SN"} and repeats > 1:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            f"{position}: OBX-5 holds {repeats} values for one numeric result.",
            error_code=ackmod.ERR_DATA_TYPE,
        )
    if value_type == "NM":
        raw = obx.value(5)
        number = _number(raw)
        if number is not None:
            item["value_quantity"] = number
        elif re.fullmatch(rf"\s*(?:<=|>=|<|>)\s*{NUMBER}\s*", raw):
            item["value_text"] = raw.replace(" ", "")
        else:
            raise Rejected(
                Hl7Reason.INVALID_DATA,
                f"{position}: OBX-5 of a numeric (NM) result is not a number.",
                error_code=ackmod.ERR_DATA_TYPE,
            )
    elif value_type == "SN":
        comparator, first, separator, second = (obx.value(5, i) for i in range(1, 5))
        if (first and _number(first) is None) or (second and _number(second) is None):
            raise Rejected(
                Hl7Reason.INVALID_DATA,
                f"{position}: OBX-5 of a structured numeric (SN) result is not numeric.",
                error_code=ackmod.ERR_DATA_TYPE,
            )
        if comparator in {"", "="} and first and not separator and not second:
            item["value_quantity"] = _number(first)
        else:
            item["value_text"] = f"{comparator}{first}{separator}{second}".strip()
    elif value_type in TEXT_TYPES or value_type in TIME_TYPES:
        values = [obx.text_of(5, rep) for rep in range(repeats)]
        item["value_text"] = "\n".join(v for v in values if v)
    elif value_type in CODED_TYPES:
        item["value_code"] = obx.value(5, 1)[:64]
        item["value_display"] = (obx.value(5, 2) or obx.value(5, 9) or obx.value(5, 1))[:300]
    else:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            f"{position}: OBX-2 value type {value_type or '(empty)'} is not one the portal "
            "shows as a lab result (NM, SN, ST, TX, FT, CE, CWE, CNE, DT, TS).",
            error_code=ackmod.ERR_DATA_TYPE,
        )
    return item


def _test_type(obr: Segment) -> Any:
    """The test type of OBR-4: the clinic's by LOINC, else one made for this code (released
    after a doctor's review, the safe default; the clinic may change it in the admin)."""
    loinc = loinc_of(obr, 4)
    if loinc:
        found = TestType.objects.filter(loinc_code=loinc, active=True).order_by("code").first()
        if found is not None:
            return found
    code = obr.value(4, 1) or "unspecified"
    system = obr.value(4, 3) or "local"
    slug = slugify(f"hl7-{'loinc' if loinc else system}-{code}")[:60] or "hl7-unspecified"
    name = (_name_of(obr, 4) if obr.value(4, 1) else "")[:200]
    test_type, _created = TestType.objects.get_or_create(
        code=slug,
        defaults={
            "name_ru": name or "Лабораторное исследование",
            "name_en": name or "Laboratory test",
            "loinc_code": loinc,
            "release_policy": ReleasePolicy.AFTER_REVIEW,
        },
    )
    return test_type


def _report_status(order: _Order, observations: list[dict[str, Any]]) -> str:
    code = order.obr.value(25).upper()
    if code in REPORT_STATUS:
        return REPORT_STATUS[code]
    statuses = {o["status"] for o in observations}
    if statuses and statuses <= {"final", "amended"}:
        return "amended" if "amended" in statuses else "final"
    return "preliminary"


def _external_id(order: _Order, parsed: Parsed, index: int) -> str:
    for seg, n in ((order.obr, 3), (order.orc, 3)):
        if seg is None:
            continue
        number, namespace = seg.value(n, 1), seg.value(n, 2)
        if number:
            return (f"{number}^{namespace}" if namespace else number)[:128]
    set_id = order.obr.value(1) or str(index + 1)
    return f"{parsed.header.control_id}/{set_id}"[:128]


def handle_oru_r01(parsed: Parsed) -> Outcome:
    system = parsed.header.system
    orders = _orders(parsed)
    if not orders:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            "The ORU^R01 has no OBR segment: no results to file.",
            error_code=ackmod.ERR_SEGMENT_SEQUENCE,
        )
    performer_default = parsed.header.sending_facility or parsed.header.sending_application
    outcome = Outcome(kind=LinkedKind.LAB_REPORT)
    patients: dict[int, PatientProfile] = {}
    for index, order in enumerate(orders):
        if order.pid is None:
            raise Rejected(
                Hl7Reason.INVALID_DATA,
                "An OBR comes before any PID: whose results they are is unknown.",
                error_code=ackmod.ERR_SEGMENT_SEQUENCE,
            )
        key = id(order.pid)
        if key not in patients:
            patients[key] = matched_patient(order.pid, system=system)
        patient = patients[key]
        observations = []
        for number, (obx, notes) in enumerate(order.results, start=1):
            item = _observation(obx, notes, f"OBR {index + 1}, OBX {number}")
            if item is not None:
                observations.append(item)
        if not observations:
            outcome.notes.append(f"OBR {index + 1}: no results yet (pending or deleted)")
            continue
        first_obx = order.results[0][0]
        report = lab_report_receive(
            by=None,
            patient=patient,
            test_type=_test_type(order.obr),
            observations=observations,
            status=_report_status(order, observations),
            issued_at=parse_datetime(order.obr.value(22)) or parsed.header.sent_at,
            collected_at=parse_datetime(order.obr.value(7)),
            performer=first_obx.value(23, 1) or performer_default,
            conclusion="\n".join(order.notes),
            ordered_by=doctor_for([order.obr.value(16, 1)], system=system),
            source=system,
            external_id=_external_id(order, parsed, index),
        )
        outcome.ids.append(report.pk)
        outcome.patient = outcome.patient or patient
    if not outcome.ids:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            "No OBR of the message has a result to file (all pending or deleted).",
            error_code=ackmod.ERR_REQUIRED_FIELD,
        )
    outcome.summary = f"{len(outcome.ids)} lab report(s)"
    return outcome
