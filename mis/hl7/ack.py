"""ACK and NAK replies (HL7 v2 original acknowledgement mode).

The reply's MSH swaps sender and receiver of the message (MSH-3/4 <-> MSH-5/6, copied as
sent) and keeps its encoding characters, processing id and version; MSA-1 is AA, AE or
AR and MSA-2 the received control id. From version 2.5 an ERR segment carries the HL7
error code (table 0357) of a NAK. MSA-3 holds a short text written by the portal.
"""

from __future__ import annotations

import uuid

from django.utils import timezone

from mis.hl7.parse import Encoding, Header

# HL7 table 0357 (message error condition codes) used here.
ERR_SEGMENT_SEQUENCE = "100"
ERR_REQUIRED_FIELD = "101"
ERR_DATA_TYPE = "102"
ERR_TABLE_VALUE = "103"
ERR_UNSUPPORTED_TYPE = "200"
ERR_UNSUPPORTED_EVENT = "201"
ERR_UNSUPPORTED_VERSION = "203"
ERR_UNKNOWN_KEY = "204"
ERR_DUPLICATE_KEY = "205"
ERR_INTERNAL = "207"

DEFAULT_VERSION = "2.5"
OWN_NAME = "CLINIC_PORTAL"


def _version_at_least(version: str, minimum: tuple[int, ...]) -> bool:
    try:
        parts = tuple(int(p) for p in version.split("."))
    except ValueError:
        return False
    return parts >= minimum


def build_ack(
    header: Header | None,
    code: str,
    text: str = "",
    *,
    error_code: str = "",
) -> str:
    """The reply to a message. `header` is None when not even MSH could be read."""
    if header is not None:
        enc = header.encoding
        msh = header.msh
        sender_app, sender_fac = msh.raw(5), msh.raw(6)
        receiver_app, receiver_fac = msh.raw(3), msh.raw(4)
        version = header.version or DEFAULT_VERSION
        processing = msh.raw(11) or "P"
        trigger = header.trigger_event
        control_id = header.control_id
    else:
        enc = Encoding()
        sender_app, sender_fac, receiver_app, receiver_fac = OWN_NAME, "", "", ""
        version, processing, trigger, control_id = DEFAULT_VERSION, "P", "", ""
    sender_app = sender_app or OWN_NAME
    modern = _version_at_least(version, (2, 5))
    message_type = enc.component.join(["ACK", trigger, "ACK"] if modern else ["ACK", trigger])
    if not trigger:
        message_type = "ACK"
    stamp = timezone.now().strftime("%Y%m%d%H%M%S+0000")
    fs = enc.field
    msh_fields = [
        "MSH",
        enc.chars,
        sender_app,
        sender_fac,
        receiver_app,
        receiver_fac,
        stamp,
        "",
        message_type,
        uuid.uuid4().hex[:20],
        processing,
        enc.escape_text(version) if fs in version else version,
    ]
    segments = [fs.join(msh_fields)]
    msa = ["MSA", code, enc.escape_text(control_id)]
    if text:
        msa.append(enc.escape_text(text[:80]))
    segments.append(fs.join(msa))
    if code != "AA" and modern:
        severity = "E"
        err = [
            "ERR",
            "",
            "",
            enc.component.join([error_code or ERR_INTERNAL, "", "HL70357"]),
            severity,
        ]
        if text:
            err += ["", "", enc.escape_text(text[:250])]  # ERR-7 diagnostic information
        segments.append(fs.join(err))
    return "".join(f"{s}\r" for s in segments)
