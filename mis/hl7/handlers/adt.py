"""ADT^A04/A08 (and A28/A31): a matched patient's details, through accounts' services."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import Sex
from accounts.services import patient_profile_update
from accounts.validators import validate_phone
from mis.hl7 import ack as ackmod
from mis.hl7.handlers.base import Outcome, Rejected
from mis.hl7.handlers.identity import PatientIds, find_patient, patient_ids, require_pid
from mis.hl7.parse import Parsed, Segment, parse_date
from mis.models import Hl7Reason, LinkedKind, MatchReason, MatchState, PatientMatchReview

SEX = {"M": Sex.MALE, "F": Sex.FEMALE}


def _legal_name_rep(pid: Segment) -> int:
    reps = pid.repetitions(5)
    for rep in range(len(reps)):
        if pid.value(5, 7, rep=rep).upper() == "L":
            return rep
    return 0


def _phone(pid: Segment) -> str:
    for n in (13, 14):
        for rep in range(len(pid.repetitions(n))):
            unformatted = pid.value(n, 12, rep=rep)
            if unformatted:
                return unformatted
            local = pid.value(n, 7, rep=rep)
            if local:
                country, area = pid.value(n, 5, rep=rep), pid.value(n, 6, rep=rep)
                prefix = f"+{country.lstrip('+')} " if country else ""
                return f"{prefix}{area} {local}".strip()
            number = pid.value(n, 1, rep=rep)
            if number:
                return number
    return ""


def _address(pid: Segment) -> str:
    if not pid.repetitions(11):
        return ""
    street = " ".join(p for p in pid.parts(11, 1) if p)
    parts = [street, *(pid.value(11, i) for i in range(2, 7))]
    return ", ".join(p for p in parts if p)[:500]


def patient_changes(pid: Segment, ids: PatientIds) -> tuple[dict[str, Any], list[str]]:
    """What PID says about the person, field by field; values that fail the portal's
    checks are left out and named in the notes. Empty fields change nothing; HL7's
    explicit null (`""`) clears an optional one."""
    changes: dict[str, Any] = {}
    notes: list[str] = []
    rep = _legal_name_rep(pid)
    family = pid.value(5, 1, 1, rep=rep)
    given = pid.value(5, 2, rep=rep)
    middle = pid.value(5, 3, rep=rep)
    if family:
        changes["last_name"] = family[:100]
    if given:
        changes["first_name"] = given[:100]
    if middle:
        changes["middle_name"] = middle[:100]
    birth = pid.value(7, 1)
    if birth:
        parsed_birth = parse_date(birth)
        if parsed_birth is not None and parsed_birth <= timezone.localdate():
            changes["birth_date"] = parsed_birth
        else:
            notes.append("date of birth (PID-7) not a valid past date")
    sex = pid.value(8, 1).upper()
    if sex in SEX:
        changes["sex"] = SEX[sex]
    phone = _phone(pid)
    if pid.is_null(13):
        changes["phone"] = ""
    elif phone:
        try:
            validate_phone(phone)
            changes["phone"] = phone[:32]
        except ValidationError:
            notes.append("phone (PID-13) not a valid phone number")
    if pid.is_null(11):
        changes["address"] = ""
    else:
        address = _address(pid)
        if address:
            changes["address"] = address
    if ids.snils:
        from accounts.validators import format_snils

        changes["snils"] = format_snils(ids.snils)
    return changes, notes


def _fhir_patient(pid: Segment, ids: PatientIds) -> dict[str, Any]:
    """PID as a minimal FHIR Patient, the shape of the review queue's `raw` (the FHIR
    pull's rematch reads its SNILS from there when the person registers later)."""
    rep = _legal_name_rep(pid)
    resource: dict[str, Any] = {"resourceType": "Patient", "id": ids.mis_id}
    if ids.snils:
        resource["identifier"] = [{"system": "urn:oid:1.2.643.100.3", "value": ids.snils}]
    given = [p for p in (pid.value(5, 2, rep=rep), pid.value(5, 3, rep=rep)) if p]
    name = {k: v for k, v in (("family", pid.value(5, 1, 1, rep=rep)), ("given", given)) if v}
    if name:
        resource["name"] = [name]
    birth = parse_date(pid.value(7, 1))
    if birth is not None:
        resource["birthDate"] = birth.isoformat()
    gender = {"M": "male", "F": "female"}.get(pid.value(8, 1).upper())
    if gender:
        resource["gender"] = gender
    return resource


def review_queue_upsert(parsed: Parsed, pid: Segment, ids: PatientIds) -> PatientMatchReview:
    """Put (or keep) the MIS patient in the patient match review queue, where a person
    links it to a portal patient or dismisses it."""
    system, now = parsed.header.system, timezone.now()
    reason = MatchReason.NOT_FOUND if ids.snils else MatchReason.NO_IDENTIFIERS
    raw = json.dumps(_fhir_patient(pid, ids), ensure_ascii=False)
    review = PatientMatchReview.objects.filter(system=system, resource_id=ids.mis_id).first()
    if review is None:
        return PatientMatchReview.objects.create(
            system=system,
            resource_id=ids.mis_id,
            version=parsed.header.control_id[:64],
            reason=reason,
            summary=_summary(pid),
            raw=raw,
            created_at=now,
            updated_at=now,
        )
    review.version = parsed.header.control_id[:64]
    review.reason, review.summary, review.raw, review.updated_at = reason, _summary(pid), raw, now
    if review.state == MatchState.LINKED:
        review.state = MatchState.PENDING  # its link went away: decide again
    review.save()
    return review


def _unknown_on_register(parsed: Parsed, pid: Segment, ids: PatientIds) -> Rejected:
    """An A04 for a person the portal does not know. Accounts are never made from the MIS
    (patients register themselves); the MIS patient goes to the review queue (kept though
    the message is rejected) and the message can be processed again once linked."""
    text = (
        "No portal patient has the MIS id or SNILS in PID-3; accounts are never created "
        "from the MIS (patients register in the portal)."
    )
    if not ids.mis_id:
        return Rejected(Hl7Reason.UNKNOWN_PATIENT, text, error_code=ackmod.ERR_UNKNOWN_KEY)
    return Rejected(
        Hl7Reason.PATIENT_REVIEW,
        text + " The MIS patient waits in the patient match review queue; process this "
        "message again after linking.",
        error_code=ackmod.ERR_UNKNOWN_KEY,
        then=lambda: review_queue_upsert(parsed, pid, ids),
    )


def _summary(pid: Segment) -> str:
    rep = _legal_name_rep(pid)
    parts = (pid.value(5, 1, 1, rep=rep), pid.value(5, 2, rep=rep), pid.value(5, 3, rep=rep))
    name = " ".join(p for p in parts if p)
    birth = parse_date(pid.value(7, 1))
    return f"{name}, {birth.isoformat() if birth else '—'}"


def handle_adt_register(parsed: Parsed) -> Outcome:
    return _adt(parsed, register=True)


def handle_adt_update(parsed: Parsed) -> Outcome:
    return _adt(parsed, register=False)


def _adt(parsed: Parsed, *, register: bool) -> Outcome:
    system = parsed.header.system
    pid = require_pid(parsed)
    ids = patient_ids(pid)
    if not ids.mis_id and not ids.snils:
        raise Rejected(
            Hl7Reason.UNKNOWN_PATIENT,
            "PID-3 has neither an MIS patient id nor a SNILS.",
            error_code=ackmod.ERR_REQUIRED_FIELD,
        )
    patient = find_patient(ids, system=system)
    if patient is None:
        if register:
            raise _unknown_on_register(parsed, pid, ids)
        raise Rejected(
            Hl7Reason.UNKNOWN_PATIENT,
            "No portal patient has the MIS id or SNILS in PID-3; the update is not applied.",
            error_code=ackmod.ERR_UNKNOWN_KEY,
        )
    changes, notes = patient_changes(pid, ids)
    try:
        patient_profile_update(by=None, profile=patient, **changes)
    except ValidationError as exc:
        fields = sorted(getattr(exc, "message_dict", {}) or [])
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            "The portal refused the patient's details"
            + (f" ({', '.join(fields)})" if fields else "")
            + ": "
            + " ".join(exc.messages)[:300],
            patient=patient,
        ) from exc
    return Outcome(
        kind=LinkedKind.PATIENT,
        ids=[patient.pk],
        patient=patient,
        notes=notes,
        summary=f"details: {', '.join(sorted(changes)) or 'nothing new'}",
    )
