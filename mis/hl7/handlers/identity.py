"""Who a message is about: patients by PID-3 identifiers, doctors by practitioner links."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from accounts.models import PatientProfile, Role, User
from accounts.validators import validate_snils
from mis import matching
from mis.hl7 import ack as ackmod
from mis.hl7.handlers.base import Rejected
from mis.hl7.parse import Parsed, Segment
from mis.models import ExternalLink, Hl7Reason, LinkedKind

SNILS_AUTHORITIES = frozenset({"SNILS", "1.2.643.100.3", "PFR", "SFR"})
# Identifier types that are not the MIS's own patient id.
NOT_MIS_ID_TYPES = frozenset({"SS", "SNILS", "PPN", "DL", "DN", "NPI", "BC", "NI", "NH", "HC"})
MIS_ID_PREFERENCE = ("MR", "PI", "PT", "PN", "MRT")


@dataclass(frozen=True)
class PatientIds:
    mis_id: str = ""
    snils: str = ""


def _valid_snils(value: str) -> str:
    digits = matching.normalise_snils(value)
    if not digits:
        return ""
    try:
        validate_snils(digits)
    except ValidationError:
        return ""
    return digits


def patient_ids(pid: Segment) -> PatientIds:
    snils = ""
    candidates: list[tuple[str, str]] = []
    for rep in range(len(pid.repetitions(3))):
        value = pid.value(3, 1, rep=rep)
        if not value:
            continue
        id_type = pid.value(3, 5, rep=rep).upper()
        authority = {pid.value(3, 4, 1, rep=rep).upper(), pid.value(3, 4, 2, rep=rep).upper()}
        if id_type in {"SNILS", "SS"} or authority & SNILS_AUTHORITIES:
            snils = snils or _valid_snils(value)
            continue
        if id_type in NOT_MIS_ID_TYPES:
            continue
        candidates.append((id_type, value[:255]))
    mis_id = ""
    for wanted in MIS_ID_PREFERENCE:
        mis_id = next((v for t, v in candidates if t == wanted), "")
        if mis_id:
            break
    if not mis_id and candidates:
        mis_id = candidates[0][1]
    return PatientIds(mis_id=mis_id, snils=snils)


def find_patient(ids: PatientIds, *, system: str) -> PatientProfile | None:
    """The portal patient these identifiers name, or None. Identifiers that name two
    different patients are refused, never guessed between."""
    if not ids.mis_id and not ids.snils:
        return None
    found = matching.patient_for_identifiers(
        system=system, mis_id=ids.mis_id or None, snils=ids.snils or None
    )
    if found is not None and ids.snils and ids.mis_id:
        by_snils = PatientProfile.objects.filter(snils=ids.snils).values_list("pk", flat=True)
        other = by_snils.first()
        if other is not None and other != found.pk:
            raise Rejected(
                Hl7Reason.UNKNOWN_PATIENT,
                "PID-3's MIS id and SNILS belong to two different portal patients.",
                error_code=ackmod.ERR_UNKNOWN_KEY,
            )
    if found is not None and ids.mis_id:
        linked = matching.linked_id(LinkedKind.PATIENT, system=system, value=ids.mis_id)
        if linked is None:
            matching.link_set(
                kind=LinkedKind.PATIENT, system=system, value=ids.mis_id, object_id=found.pk
            )
    return found


def require_pid(parsed: Parsed) -> Segment:
    pid = parsed.first("PID")
    if pid is None:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            "The message has no PID segment.",
            error_code=ackmod.ERR_SEGMENT_SEQUENCE,
        )
    return pid


def matched_patient(pid: Segment, *, system: str) -> PatientProfile:
    ids = patient_ids(pid)
    if not ids.mis_id and not ids.snils:
        raise Rejected(
            Hl7Reason.UNKNOWN_PATIENT,
            "PID-3 has neither an MIS patient id nor a SNILS.",
            error_code=ackmod.ERR_REQUIRED_FIELD,
        )
    patient = find_patient(ids, system=system)
    if patient is None:
        raise Rejected(
            Hl7Reason.UNKNOWN_PATIENT,
            "No portal patient has the MIS id or SNILS in PID-3 "
            "(link the patient in the MIS review queue, then process the message again).",
            error_code=ackmod.ERR_UNKNOWN_KEY,
        )
    return patient


# --- Doctors -------------------------------------------------------------------------------


def doctor_for(values: list[str], *, system: str) -> User | None:
    """A doctor linked to one of these MIS practitioner ids: by this sender's links
    first, then by the FHIR MIS's (the same MIS usually has one id per practitioner)."""
    for value in values:
        if not value:
            continue
        object_id = matching.linked_id(LinkedKind.PRACTITIONER, system=system, value=value)
        if object_id is None:
            ids = set(
                ExternalLink.objects.filter(
                    kind=LinkedKind.PRACTITIONER, system__startswith="fhir:", value=value
                ).values_list("object_id", flat=True)
            )
            object_id = ids.pop() if len(ids) == 1 else None
        if object_id is None:
            continue
        doctor = User.objects.filter(pk=object_id, role=Role.DOCTOR, is_active=True).first()
        if doctor is not None:
            return doctor
    return None
