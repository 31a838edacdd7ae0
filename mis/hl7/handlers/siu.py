"""SIU: appointments booked, moved, cancelled or missed, through scheduling's services."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError

from accounts.models import PatientProfile, User
from mis import matching
from mis.hl7 import ack as ackmod
from mis.hl7.handlers.base import Outcome, Rejected
from mis.hl7.handlers.identity import doctor_for, matched_patient, require_pid
from mis.hl7.parse import Parsed, Segment, parse_datetime
from mis.models import Hl7Reason, LinkedKind
from scheduling.models import Appointment, AppointmentSource, AppointmentStatus, ConsultationType
from scheduling.services import (
    SlotTaken,
    appointment_book_slot,
    appointment_cancel,
    appointment_reschedule,
    appointment_set_status,
    cancellation_quote,
)


def _appointment_keys(sch: Segment) -> list[str]:
    """SCH-2 (filler, the MIS's appointment id) first, then SCH-1 (placer)."""
    return [v[:255] for v in (sch.value(2, 1), sch.value(1, 1)) if v]


def _linked_appointment(keys: list[str], *, system: str) -> Any:
    for key in keys:
        object_id = matching.linked_id(LinkedKind.APPOINTMENT, system=system, value=key)
        if object_id is not None:
            found = Appointment.objects.filter(pk=object_id).first()
            if found is not None:
                return found
        # An appointment the portal pushed to the MIS comes back under its public id.
        try:
            public_id = uuid.UUID(key)
        except ValueError:
            continue
        found = Appointment.objects.filter(public_id=public_id).first()
        if found is not None:
            return found
    return None


def _start_and_minutes(parsed: Parsed) -> tuple[datetime | None, int | None]:
    tq1, sch = parsed.first("TQ1"), parsed.first("SCH")
    ais, aip, ail = parsed.first("AIS"), parsed.first("AIP"), parsed.first("AIL")
    candidates = [
        (tq1, 7, 1),
        (ais, 4, 1),
        (aip, 6, 1),
        (ail, 6, 1),
        (sch, 11, 4),
    ]
    start = None
    for seg, n, comp in candidates:
        if seg is not None:
            start = parse_datetime(seg.value(n, comp))
            if start is not None:
                break
    minutes = None
    end = parse_datetime(tq1.value(8, 1)) if tq1 is not None else None
    if start is not None and end is not None and end > start:
        minutes = int((end - start).total_seconds() // 60)
    for seg, n in ((ais, 7), (aip, 9), (ail, 9)):
        if minutes is None and seg is not None and seg.value(n).isdigit():
            unit = seg.value(n + 1, 1).lower()
            factor = {"h": 60, "hr": 60, "hour": 60, "s": 1 / 60, "sec": 1 / 60}.get(unit, 1)
            minutes = int(int(seg.value(n)) * factor) or None
    return start, minutes


def _siu_doctor(parsed: Parsed, *, system: str) -> User | None:
    values = [
        seg.value(3, 1, rep=r) for seg in parsed.all("AIP") for r in range(len(seg.repetitions(3)))
    ]
    return doctor_for(values, system=system)


def _consultation_type(parsed: Parsed, doctor: User, minutes: int | None) -> Any:
    offered = list(ConsultationType.objects.filter(doctors=doctor, active=True).order_by("code"))
    sch, ais = parsed.first("SCH"), parsed.first("AIS")
    wanted = [
        v.lower()
        for v in (
            ais.value(3, 1) if ais else "",
            sch.value(8, 1) if sch else "",
            sch.value(7, 1) if sch else "",
        )
        if v
    ]
    for code in wanted:
        match = next((c for c in offered if c.code.lower() == code), None)
        if match is not None:
            return match
    if len(offered) == 1:
        return offered[0]
    if minutes:
        same = [c for c in offered if c.duration_minutes == minutes]
        if len(same) == 1:
            return same[0]
    raise Rejected(
        Hl7Reason.INVALID_DATA,
        "Cannot tell which of the doctor's consultation types this is: give its code in "
        "AIS-3 or SCH-8, or a duration that only one of them has.",
        error_code=ackmod.ERR_TABLE_VALUE,
    )


def _appointment_for_change(parsed: Parsed, *, system: str) -> tuple[Any, PatientProfile]:
    sch = parsed.first("SCH")
    keys = _appointment_keys(sch) if sch is not None else []
    if not keys:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            "SCH-1 and SCH-2 (the appointment ids) are empty.",
            error_code=ackmod.ERR_REQUIRED_FIELD,
        )
    appointment = _linked_appointment(keys, system=system)
    if appointment is None:
        raise Rejected(
            Hl7Reason.UNKNOWN_APPOINTMENT,
            "The portal has no appointment with the ids in SCH-1/SCH-2.",
            error_code=ackmod.ERR_UNKNOWN_KEY,
        )
    patient = matched_patient(require_pid(parsed), system=system)
    if appointment.patient_id != patient.pk:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            "The appointment in SCH belongs to another patient than PID names.",
            error_code=ackmod.ERR_UNKNOWN_KEY,
            patient=patient,
        )
    return appointment, patient


def _touch_link(appointment: Any, parsed: Parsed) -> None:
    sch = parsed.first("SCH")
    for key in _appointment_keys(sch)[:1] if sch is not None else []:
        matching.link_set(
            kind=LinkedKind.APPOINTMENT,
            system=parsed.header.system,
            value=key,
            object_id=appointment.pk,
            version=parsed.header.control_id,
        )


def _scheduling_rejection(exc: Exception, patient: PatientProfile) -> Rejected:
    if isinstance(exc, SlotTaken):
        return Rejected(
            Hl7Reason.SLOT_UNAVAILABLE,
            "The doctor has no free slot at that time in the portal's schedule "
            "(outside working hours, in the past or taken).",
            patient=patient,
        )
    messages = getattr(exc, "messages", None) or [str(exc)]
    return Rejected(Hl7Reason.INVALID_DATA, " ".join(messages)[:500], patient=patient)


def _move_if_needed(appointment: Any, parsed: Parsed, patient: PatientProfile) -> bool:
    start, _minutes = _start_and_minutes(parsed)
    if start is None or start == appointment.starts_at:
        return False
    doctor = _siu_doctor(parsed, system=parsed.header.system)
    if doctor is not None and doctor.pk != appointment.doctor_id:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            "Moving an appointment to another doctor is not supported; cancel and book anew.",
            patient=patient,
        )
    try:
        appointment_reschedule(by=None, appointment=appointment, new_start=start)
    except (SlotTaken, ValidationError) as exc:
        raise _scheduling_rejection(exc, patient) from exc
    return True


def handle_siu_new(parsed: Parsed) -> Outcome:
    system = parsed.header.system
    sch = parsed.first("SCH")
    keys = _appointment_keys(sch) if sch else []
    if not keys:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            "SCH-1 and SCH-2 (the appointment ids) are empty.",
            error_code=ackmod.ERR_REQUIRED_FIELD,
        )
    existing = _linked_appointment(keys, system=system)
    if existing is not None:  # the booking sent again under a new control id
        appointment, patient = _appointment_for_change(parsed, system=system)
        moved = _move_if_needed(appointment, parsed, patient)
        _touch_link(appointment, parsed)
        return Outcome(
            kind=LinkedKind.APPOINTMENT,
            ids=[appointment.pk],
            patient=patient,
            summary="moved" if moved else "already booked",
        )
    patient = matched_patient(require_pid(parsed), system=system)
    doctor = _siu_doctor(parsed, system=system)
    if doctor is None:
        raise Rejected(
            Hl7Reason.UNKNOWN_DOCTOR,
            "No portal doctor is linked to the personnel ids in AIP-3.",
            error_code=ackmod.ERR_UNKNOWN_KEY,
            patient=patient,
        )
    start, minutes = _start_and_minutes(parsed)
    if start is None:
        raise Rejected(
            Hl7Reason.INVALID_DATA,
            "No start time (TQ1-7, AIS-4, AIP-6 or SCH-11).",
            error_code=ackmod.ERR_REQUIRED_FIELD,
            patient=patient,
        )
    ctype = _consultation_type(parsed, doctor, minutes)
    try:
        appointment = appointment_book_slot(
            by=None,
            patient=patient,
            doctor=doctor,
            consultation_type=ctype,
            starts_at=start,
            source=AppointmentSource.MIS,
        )
    except (SlotTaken, ValidationError) as exc:
        raise _scheduling_rejection(exc, patient) from exc
    _touch_link(appointment, parsed)
    return Outcome(
        kind=LinkedKind.APPOINTMENT, ids=[appointment.pk], patient=patient, summary="booked"
    )


def handle_siu_change(parsed: Parsed) -> Outcome:
    appointment, patient = _appointment_for_change(parsed, system=parsed.header.system)
    moved = _move_if_needed(appointment, parsed, patient)
    _touch_link(appointment, parsed)
    return Outcome(
        kind=LinkedKind.APPOINTMENT,
        ids=[appointment.pk],
        patient=patient,
        summary="moved" if moved else "nothing to change",
    )


CANCEL_REASONS = {
    "S15": "Cancelled in the MIS",
    "S16": "Discontinued in the MIS",
    "S17": "Deleted in the MIS",
}


def handle_siu_cancel(parsed: Parsed) -> Outcome:
    appointment, patient = _appointment_for_change(parsed, system=parsed.header.system)
    if appointment.status != AppointmentStatus.CANCELLED:
        quote = cancellation_quote(appointment, by=None)
        if quote.allowed and quote.fee > 0:
            # The clinic cancels: the patient must never pay a late-cancellation fee for it,
            # and scheduling's services give the system no fee-free late path yet.
            raise Rejected(
                Hl7Reason.INVALID_DATA,
                "Too late to cancel from the MIS without charging the patient the "
                "late-cancellation fee; cancel it at the portal's reception.",
                patient=patient,
            )
    try:
        appointment_cancel(
            by=None,
            appointment=appointment,
            reason=CANCEL_REASONS.get(parsed.header.trigger_event, "Cancelled in the MIS"),
        )
    except ValidationError as exc:
        raise _scheduling_rejection(exc, patient) from exc
    _touch_link(appointment, parsed)
    return Outcome(
        kind=LinkedKind.APPOINTMENT, ids=[appointment.pk], patient=patient, summary="cancelled"
    )


def handle_siu_no_show(parsed: Parsed) -> Outcome:
    appointment, patient = _appointment_for_change(parsed, system=parsed.header.system)
    if appointment.status != AppointmentStatus.NO_SHOW:
        try:
            appointment_set_status(
                by=None, appointment=appointment, status=AppointmentStatus.NO_SHOW
            )
        except ValidationError as exc:
            raise _scheduling_rejection(exc, patient) from exc
    _touch_link(appointment, parsed)
    return Outcome(
        kind=LinkedKind.APPOINTMENT, ids=[appointment.pk], patient=patient, summary="no-show"
    )
