"""Applying HL7 v2 messages through the other apps' services.

| message | does | through |
|---|---|---|
| ORU^R01 | one lab report per OBR, its OBX as observations | records.services.lab_report_receive |
| SIU^S12 | books the appointment (source MIS) | scheduling.services.appointment_book_slot |
| SIU^S13, S14 | moves it when its time changed | appointment_reschedule |
| SIU^S15, S16, S17 | cancels it | appointment_cancel |
| SIU^S26 | marks it "did not come" | appointment_set_status |
| ADT^A04, A28 | updates the matched patient's details | accounts.services.patient_profile_update |
| ADT^A08, A31 | the same | the same |

The system acts (`by=None`). Every handler runs inside the message's transaction and
raises `Rejected` (with a reason written here, never a value from the message) when the
message cannot be applied; nothing it did before stays (see mis.services_hl7).

Patients are found by identifier only (mis.matching): PID-3's MIS id (type MR, else PI,
else another local id) through an ExternalLink of this sender ("hl7:<facility>"), or a
SNILS, which PID-3 carries as a CX whose type code (CX-5) is "SNILS" or whose assigning
authority (CX-4) is "SNILS" or the EGISZ OID 1.2.643.100.3, or as a type "SS" (social
security number) that is a valid 11-digit SNILS. Never by name.
"""

from __future__ import annotations

from collections.abc import Callable

from mis.hl7 import ack as ackmod
from mis.hl7.handlers.adt import handle_adt_register, handle_adt_update
from mis.hl7.handlers.base import Outcome, Rejected
from mis.hl7.handlers.oru import handle_oru_r01
from mis.hl7.handlers.siu import (
    handle_siu_cancel,
    handle_siu_change,
    handle_siu_new,
    handle_siu_no_show,
)
from mis.hl7.parse import Parsed
from mis.models import Hl7Reason

__all__ = ["HANDLERS", "Outcome", "Rejected", "handle"]

HANDLERS: dict[tuple[str, str], Callable[[Parsed], Outcome]] = {
    ("ORU", "R01"): handle_oru_r01,
    ("SIU", "S12"): handle_siu_new,
    ("SIU", "S13"): handle_siu_change,
    ("SIU", "S14"): handle_siu_change,
    ("SIU", "S15"): handle_siu_cancel,
    ("SIU", "S16"): handle_siu_cancel,
    ("SIU", "S17"): handle_siu_cancel,
    ("SIU", "S26"): handle_siu_no_show,
    ("ADT", "A04"): handle_adt_register,
    ("ADT", "A28"): handle_adt_register,
    ("ADT", "A08"): handle_adt_update,
    ("ADT", "A31"): handle_adt_update,
}
HANDLED_TYPES = {message_type for message_type, _trigger in HANDLERS}


def handle(parsed: Parsed) -> Outcome:
    header = parsed.header
    handler = HANDLERS.get((header.message_type, header.trigger_event))
    if handler is None:
        known = header.message_type in HANDLED_TYPES
        what = f"{header.message_type}^{header.trigger_event or '?'}"
        if header.message_type == "ADT" and header.trigger_event in {"A40", "A41", "A47"}:
            detail = "merges and identifier changes are not applied automatically"
        elif known:
            detail = "this trigger event is not handled"
        else:
            detail = "the portal takes ORU^R01, SIU^S12–S17/S26 and ADT^A04/A08/A28/A31"
        raise Rejected(
            Hl7Reason.UNSUPPORTED,
            f"{what} is not applied: {detail}.",
            error_code=ackmod.ERR_UNSUPPORTED_EVENT if known else ackmod.ERR_UNSUPPORTED_TYPE,
        )
    return handler(parsed)
