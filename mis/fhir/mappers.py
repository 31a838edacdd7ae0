"""From FHIR R4 (R4B models) to what the portal's services take. Pure functions: no
database, no network. A resource the portal cannot use raises `Unmappable` with a reason
an operator can act on (it never quotes values of the resource: no personal data in
errors)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings

LOINC = "http://loinc.org"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V2_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v2-0078"


class Unmappable(ValueError):
    """A valid resource the portal cannot use; `missing_reference` when it points at
    something the portal does not know (yet)."""

    def __init__(self, message: str, *, missing_reference: bool = False) -> None:
        super().__init__(message)
        self.missing_reference = missing_reference


# --- small helpers -----------------------------------------------------------------------


def version_of(raw: dict) -> str:
    """What identifies this version of a resource: meta.versionId, else lastUpdated, else
    a hash of the content."""
    meta = raw.get("meta") or {}
    if meta.get("versionId"):
        return str(meta["versionId"])[:64]
    if meta.get("lastUpdated"):
        return str(meta["lastUpdated"])[:64]
    return "sha:" + hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:32]


def last_updated_of(raw: dict) -> datetime | None:
    value = (raw.get("meta") or {}).get("lastUpdated")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo("UTC"))


def reference_id(reference: Any, resource_type: str) -> str | None:
    """The id in "Type/id" (relative or absolute, with or without _history)."""
    if reference is None:
        return None
    value = getattr(reference, "reference", None) if not isinstance(reference, str) else reference
    if not value or value.startswith("#") or value.startswith("urn:"):
        return None
    parts = value.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == resource_type:
        return parts[-1]
    return None


def as_instant(value: Any) -> datetime | None:
    """A FHIR date/dateTime/instant as an aware datetime (local clinic time when the MIS
    gives none; a date alone is its midnight)."""
    if value is None:
        return None
    tz = ZoneInfo(getattr(settings, "CLINIC_TIME_ZONE", "Europe/Moscow"))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time.min, tzinfo=tz)
    text = str(value)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(text[:10]), time.min)
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def human_name(names: Any) -> str:
    """Family name first, then given names (the Russian order)."""
    for name in names or []:
        if name.text:
            return str(name.text).strip()
        parts = [name.family or "", *(name.given or [])]
        text = " ".join(str(p).strip() for p in parts if p)
        if text:
            return text
    return ""


def telecom(points: Any, system: str) -> str:
    for point in points or []:
        if point.system == system and point.value:
            return str(point.value).strip()
    return ""


def codes(concept: Any, system: str | None = None) -> list[str]:
    if concept is None:
        return []
    return [
        str(c.code)
        for c in (concept.coding or [])
        if c.code and (system is None or c.system == system)
    ]


def concept_text(concept: Any) -> str:
    if concept is None:
        return ""
    if concept.text:
        return str(concept.text)
    for coding in concept.coding or []:
        if coding.display:
            return str(coding.display)
    return ""


def _number(value: Any) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


# --- lab results -------------------------------------------------------------------------

REPORT_STATUS = {
    "registered": "preliminary",
    "partial": "preliminary",
    "preliminary": "preliminary",
    "final": "final",
    "amended": "amended",
    "corrected": "amended",
    "appended": "amended",
    "cancelled": "cancelled",
    "entered-in-error": "cancelled",
}
OBSERVATION_STATUS = {
    "registered": "preliminary",
    "preliminary": "preliminary",
    "final": "final",
    "amended": "amended",
    "corrected": "amended",
    "cancelled": "cancelled",
    "entered-in-error": "cancelled",
}
# HL7 v3 ObservationInterpretation (and v2 table 0078) → the flags the portal shows.
INTERPRETATION = {
    "N": "N",
    "H": "H",
    "L": "L",
    "HH": "HH",
    "LL": "LL",
    "HU": "HH",
    "LU": "LL",
    "A": "A",
    "AA": "A",
    ">": "HH",
    "<": "LL",
    "POS": "A",
    "DET": "A",
    "NEG": "N",
    "ND": "N",
}


def interpretation_of(concepts: Any) -> str:
    for concept in concepts or []:
        for coding in concept.coding or []:
            if coding.code and coding.system in (V3_INTERPRETATION, V2_INTERPRETATION, None):
                flag = INTERPRETATION.get(str(coding.code).upper())
                if flag:
                    return flag
    return ""


def _value_fields(source: Any) -> dict[str, Any]:
    """The value of an Observation (or one of its components)."""
    if source.valueQuantity is not None and source.valueQuantity.value is not None:
        quantity = source.valueQuantity
        return {
            "value_quantity": _number(quantity.value),
            "unit": str(quantity.unit or quantity.code or ""),
        }
    if getattr(source, "valueInteger", None) is not None:
        return {"value_quantity": Decimal(source.valueInteger)}
    if source.valueString:
        return {"value_text": str(source.valueString)}
    if source.valueCodeableConcept is not None:
        concept = source.valueCodeableConcept
        first = (concept.coding or [None])[0]
        return {
            "value_code": str(first.code) if first is not None and first.code else "",
            "value_display": concept_text(concept),
        }
    if getattr(source, "valueBoolean", None) is not None:
        return {"value_text": "yes" if source.valueBoolean else "no"}
    return {}


def _range_fields(ranges: Any) -> dict[str, Any]:
    for item in ranges or []:
        low = _number(item.low.value) if item.low is not None else None
        high = _number(item.high.value) if item.high is not None else None
        text = str(item.text or "")
        if low is not None or high is not None or text:
            return {"reference_low": low, "reference_high": high, "reference_text": text[:200]}
    return {}


def _loinc(concept: Any, what: str) -> tuple[str, str]:
    found = codes(concept, LOINC)
    if not found:
        raise Unmappable(f"{what} has no LOINC code")
    code = found[0]
    name = concept_text(concept) or code
    return code, name


def observation_inputs(observation: Any) -> list[dict[str, Any]]:
    """One Observation as records' ObservationInput fields: one item, or one per
    component (blood pressure) when the observation itself has no value."""
    status = OBSERVATION_STATUS.get(str(observation.status or "final"), "final")
    note = " ".join(str(n.text) for n in (observation.note or []) if n.text)[:2000]
    shared_flag = interpretation_of(observation.interpretation)
    value = _value_fields(observation)
    if value or not observation.component:
        code, name = _loinc(observation.code, f"Observation {observation.id or ''}".strip())
        if not value and status != "cancelled":
            raise Unmappable(f"Observation {observation.id or ''} has no value".replace("  ", " "))
        return [
            {
                "loinc_code": code,
                "name": name[:200],
                **value,
                **_range_fields(observation.referenceRange),
                "interpretation": shared_flag,
                "status": status,
                "note": note,
            }
        ]
    items = []
    for component in observation.component:
        code, name = _loinc(component.code, f"A component of Observation {observation.id or ''}")
        component_value = _value_fields(component)
        if not component_value:
            continue
        items.append(
            {
                "loinc_code": code,
                "name": name[:200],
                **component_value,
                **_range_fields(component.referenceRange),
                "interpretation": interpretation_of(component.interpretation) or shared_flag,
                "status": status,
                "note": note,
            }
        )
    if not items:
        raise Unmappable(f"Observation {observation.id or ''} has no value")
    return items


def report_fields(report: Any) -> dict[str, Any]:
    status = REPORT_STATUS.get(str(report.status or ""))
    if status is None:
        raise Unmappable("DiagnosticReport has a status the portal does not know")
    collected = report.effectiveDateTime or (
        report.effectivePeriod.start if report.effectivePeriod is not None else None
    )
    performer = ", ".join(
        str(p.display) for p in (report.performer or []) if getattr(p, "display", None)
    )
    return {
        "status": status,
        "issued_at": as_instant(report.issued),
        "collected_at": as_instant(collected),
        "performer": performer[:300],
        "conclusion": str(report.conclusion or ""),
    }


# --- appointments ------------------------------------------------------------------------

BOOKED_STATUSES = {"booked", "arrived", "checked-in", "fulfilled"}
CANCELLED_STATUSES = {"cancelled", "entered-in-error", "noshow"}


def appointment_participants(appointment: Any) -> tuple[str | None, str | None]:
    """(MIS patient id, MIS practitioner id) of an Appointment."""
    patient_id = practitioner_id = None
    for participant in appointment.participant or []:
        actor = participant.actor
        if actor is None:
            continue
        patient_id = patient_id or reference_id(actor, "Patient")
        practitioner_id = practitioner_id or reference_id(actor, "Practitioner")
    return patient_id, practitioner_id


# --- documents ---------------------------------------------------------------------------

# LOINC document types → records' issued document kinds.
DOCUMENT_KINDS = {
    "18842-5": "discharge_summary",
    "34105-7": "discharge_summary",
    "57133-1": "referral",
    "57134-9": "referral",
    "57833-6": "prescription",
    "11488-4": "discharge_summary",
    "34109-9": "discharge_summary",
    "64297-5": "certificate",
}


def document_fields(document: Any) -> dict[str, Any]:
    """kind, title, body and whether it is final, from a DocumentReference."""
    kind = next(
        (DOCUMENT_KINDS[c] for c in codes(document.type, LOINC) if c in DOCUMENT_KINDS), None
    )
    if kind is None:
        raise Unmappable("DocumentReference type is not one the portal issues (LOINC)")
    body = ""
    title = str(document.description or concept_text(document.type) or "")
    for content in document.content or []:
        attachment = content.attachment
        if attachment is None:
            continue
        title = title or str(attachment.title or "")
        if attachment.data and str(attachment.contentType or "").startswith("text/"):
            try:
                raw = attachment.data  # fhir.resources decodes base64Binary to bytes
                if not isinstance(raw, bytes):
                    raw = base64.b64decode(str(raw), validate=False)
                body = raw.decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
                raise Unmappable("DocumentReference text attachment cannot be read") from exc
            if body.strip():
                break
    if not body.strip():
        raise Unmappable("DocumentReference has no text content the portal can show")
    final = str(document.status or "current") == "current" and str(
        document.docStatus or "final"
    ) in ("final", "amended")
    return {
        "kind": kind,
        "title": (title or kind)[:200],
        "body": body.strip()[:20_000],
        "final": final,
    }
