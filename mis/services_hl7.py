"""Receiving HL7 v2 messages: record, apply, acknowledge.

`hl7_ingest` is the one entry point (MLLP listener, file command, tests). For each
message, in one transaction:

1. It is recorded (`Hl7Message`, text encrypted) under its sender and control id
   (MSH-3, MSH-4, MSH-10); a per-key advisory lock makes two deliveries of the same
   message at once queue rather than race.
2. The same message again (same key, same text apart from MSH-7) changes nothing: a
   `duplicate` row records the delivery and the first reply is sent again. The one
   exception is a message that failed with AE (an error on our side): it is processed
   again. A different message reusing a control id is rejected (AR).
3. Otherwise the handler for its type applies it through the other apps' services inside
   a savepoint: when it raises, whatever it did is undone and the row says why
   (`rejected`, a reason code and text, AR or AE); when it works, `applied` and AA.
4. The ACK is built, stored on the row and returned; the outcome is audited.

Reasons never quote the message: they name fields and rules, so the list stays readable
in clear and filterable in the admin.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import traceback
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import policies
from accounts.models import User
from audit.models import AuditAction
from audit.services import audit_record
from mis.hl7 import ack as ackmod
from mis.hl7 import handlers
from mis.hl7.parse import Header, Parsed, ParseError, decode, normalise, parse, read_header
from mis.models import AckCode, Hl7Message, Hl7Reason, Hl7Source, Hl7State

logger = logging.getLogger(__name__)

# A message larger than this is refused without being read (MLLP and files).
MAX_MESSAGE_BYTES = 1024 * 1024
# Class id of the two-key advisory lock per (sender, control id).
HL7_LOCK_CLASS = 4215


@dataclass(frozen=True)
class IngestResult:
    ack_text: str
    message_row: Hl7Message

    @property
    def ack_code(self) -> str:
        return self.message_row.ack_code

    @property
    def state(self) -> str:
        return self.message_row.state


@dataclass
class _Read:
    text: str
    header: Header | None
    parsed: Parsed | None
    problem: ParseError | None
    too_large: bool = False


def _read(raw: bytes | str) -> _Read:
    try:
        text = normalise(raw)
    except ParseError as exc:
        # Not decodable: keep what can be shown, so an operator sees what arrived.
        shown = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        text = shown.replace("\r\n", "\r").replace("\n", "\r")
        return _Read(text=text, header=_header_or_none(text), parsed=None, problem=exc)
    try:
        parsed = parse(text)
    except ParseError as exc:
        return _Read(text=text, header=exc.header, parsed=None, problem=exc)
    return _Read(text=text, header=parsed.header, parsed=parsed, problem=None)


def _header_or_none(text: str) -> Header | None:
    try:
        return read_header(text)
    except ParseError as exc:
        return exc.header


def content_hash(text: str, header: Header | None) -> str:
    """Keyed hash of the message without MSH-7 (a sender resending a message may stamp it
    anew); keyed so that equal hashes reveal nothing about the text."""
    body = text
    if header is not None:
        fields = list(header.msh.fields)
        if len(fields) > 7:
            fields[7] = ""
        first = header.encoding.field.join([fields[0], *fields[2:]])
        body = first + "\r" + text.split("\r", 1)[1] if "\r" in text else first
    key = hashlib.sha256(f"{settings.BLIND_INDEX_KEY}|mis.hl7message.content".encode()).digest()
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def _lock(header: Header | None) -> None:
    if header is None:
        return
    key = f"{header.sending_application}|{header.sending_facility}|{header.control_id}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [HL7_LOCK_CLASS, key])


def _primary(header: Header | None) -> Hl7Message | None:
    if header is None or not header.control_id:
        return None
    return (
        Hl7Message.objects.select_for_update()
        .filter(
            sending_application=header.sending_application,
            sending_facility=header.sending_facility,
            control_id=header.control_id,
            duplicate_of__isnull=True,
        )
        .first()
    )


def _new_row(read: _Read, *, source: str, peer: str, filename: str, size: int) -> Hl7Message:
    header = read.header
    return Hl7Message(
        control_id=header.control_id if header else "",
        sending_application=header.sending_application if header else "",
        sending_facility=header.sending_facility if header else "",
        message_type=header.message_type if header else "",
        trigger_event=header.trigger_event if header else "",
        version=header.version if header else "",
        source=source,
        peer=peer[:100],
        filename=filename[:500],
        size_bytes=size,
        received_at=timezone.now(),
    )


def _audit(row: Hl7Message, *, actor: User | None, action: str) -> None:
    audit_record(
        actor=actor,
        action=action,
        obj=row,
        patient=row.patient.user if row.patient_id else None,
        detail={
            "what": "hl7_message",
            "type": row.type_label,
            "state": row.state,
            "reason": row.reason_code,
            "ack": row.ack_code,
            "source": row.source,
            "produced": row.produced_kind,
            "ids": row.produced_ids[:20],
        },
    )


def _finish(
    row: Hl7Message,
    header: Header | None,
    *,
    state: str,
    code: str,
    reason_code: str = "",
    reason: str = "",
    error_code: str = "",
) -> None:
    row.state = state
    row.ack_code = code
    row.reason_code = reason_code
    row.reason = reason
    row.processed_at = timezone.now()
    row.ack_text = ackmod.build_ack(header, code, reason, error_code=error_code)


def _apply(row: Hl7Message, read: _Read, *, actor: User | None, action: str) -> None:
    """Apply a recorded message (new, or again) and save its outcome."""
    row.attempts += 1
    row.produced_kind, row.produced_id, row.produced_ids = "", None, []
    header = read.header
    if read.too_large:
        _finish(
            row,
            header,
            state=Hl7State.REJECTED,
            code=AckCode.REJECT,
            reason_code=Hl7Reason.TOO_LARGE,
            reason=f"The message is larger than {MAX_MESSAGE_BYTES} bytes.",
        )
    elif read.problem is not None or read.parsed is None:
        reason = read.problem.reason if read.problem else "The message could not be read."
        unsupported = "UnsupportedVersion" in reason
        _finish(
            row,
            header,
            state=Hl7State.REJECTED,
            code=AckCode.REJECT,
            reason_code=Hl7Reason.PARSE_ERROR,
            reason=reason,
            error_code=ackmod.ERR_UNSUPPORTED_VERSION if unsupported else ackmod.ERR_DATA_TYPE,
        )
    else:
        _run_handler(row, read.parsed)
    row.save()
    _audit(row, actor=actor, action=action)


def _run_handler(row: Hl7Message, parsed: Parsed) -> None:
    header = parsed.header
    try:
        with transaction.atomic():
            outcome = handlers.handle(parsed)
    except handlers.Rejected as exc:
        row.patient = exc.patient
        if exc.then is not None:
            with transaction.atomic():
                exc.then()
        _finish(
            row,
            header,
            state=Hl7State.REJECTED,
            code=exc.ack,
            reason_code=exc.code,
            reason=exc.reason,
            error_code=exc.error_code,
        )
        return
    except ValidationError as exc:
        _finish(
            row,
            header,
            state=Hl7State.REJECTED,
            code=AckCode.REJECT,
            reason_code=Hl7Reason.INVALID_DATA,
            reason=" ".join(exc.messages)[:1000],
            error_code=ackmod.ERR_DATA_TYPE,
        )
        return
    except PermissionDenied:
        _finish(
            row,
            header,
            state=Hl7State.REJECTED,
            code=AckCode.ERROR,
            reason_code=Hl7Reason.PROCESSING_ERROR,
            reason="The portal refused the change (permission denied).",
        )
        return
    except Exception as exc:  # noqa: BLE001 - every failure gets a NAK
        # Where it failed (files, lines, functions), never the exception's text or the
        # source lines: they may quote values.
        logger.error(
            "HL7 message %s failed with %s\n%s",
            row.pk,
            type(exc).__name__,
            "\n".join(
                f"  {frame.filename}:{frame.lineno} in {frame.name}"
                for frame in traceback.extract_tb(exc.__traceback__)
            ),
        )
        _finish(
            row,
            header,
            state=Hl7State.REJECTED,
            code=AckCode.ERROR,
            reason_code=Hl7Reason.PROCESSING_ERROR,
            reason=f"Processing failed ({type(exc).__name__}); sending it again may work.",
        )
        return
    row.patient = outcome.patient
    row.produced_kind = outcome.kind
    row.produced_ids = list(outcome.ids)
    row.produced_id = outcome.ids[0] if outcome.ids else None
    notes = "; ".join(outcome.notes)
    _finish(
        row,
        header,
        state=Hl7State.APPLIED,
        code=AckCode.ACCEPT,
        reason_code=Hl7Reason.PARTLY_APPLIED if notes else "",
        reason=notes,
    )


def _ingest(read: _Read, *, source: str, peer: str, filename: str, size: int) -> IngestResult:
    if source not in Hl7Source.values:
        raise ValueError(f"Unknown HL7 source: {source}")
    header = read.header
    digest = content_hash(read.text, header)
    with transaction.atomic():
        _lock(header)
        primary = _primary(header)
        if primary is not None:
            if primary.content_hash == digest and not (
                primary.state == Hl7State.REJECTED and primary.ack_code == AckCode.ERROR
            ):
                repeat = _new_row(read, source=source, peer=peer, filename=filename, size=size)
                repeat.duplicate_of = primary
                repeat.content_hash = digest
                repeat.state = Hl7State.DUPLICATE
                repeat.ack_code, repeat.ack_text = primary.ack_code, primary.ack_text
                repeat.patient_id = primary.patient_id
                repeat.reason = f"Same message as #{primary.pk}: nothing changed, same reply."
                repeat.processed_at = timezone.now()
                repeat.save()
                _audit(repeat, actor=None, action=AuditAction.CREATE)
                return IngestResult(ack_text=primary.ack_text, message_row=repeat)
            if primary.content_hash == digest:  # failed on our side before: try again
                primary.source, primary.peer, primary.filename = source, peer[:100], filename[:500]
                _apply(primary, read, actor=None, action=AuditAction.CHANGE)
                return IngestResult(ack_text=primary.ack_text, message_row=primary)
            reused = _new_row(read, source=source, peer=peer, filename=filename, size=size)
            reused.duplicate_of = primary
            reused.content_hash = digest
            reused.raw = read.text
            reused.attempts = 1
            _finish(
                reused,
                header,
                state=Hl7State.REJECTED,
                code=AckCode.REJECT,
                reason_code=Hl7Reason.CONTROL_ID_REUSED,
                reason=(
                    f"Control id already used by message #{primary.pk} from this sender "
                    "with other content; send it with a new control id."
                ),
                error_code=ackmod.ERR_DUPLICATE_KEY,
            )
            reused.save()
            _audit(reused, actor=None, action=AuditAction.CREATE)
            return IngestResult(ack_text=reused.ack_text, message_row=reused)
        row = _new_row(read, source=source, peer=peer, filename=filename, size=size)
        row.raw = "" if read.too_large else read.text
        row.content_hash = digest
        row.save()  # "received": the reply below is only sent once the outcome commits
        _apply(row, read, actor=None, action=AuditAction.CREATE)
    return IngestResult(ack_text=row.ack_text, message_row=row)


def hl7_ingest(
    *, raw: str | bytes, source: str, peer: str = "", filename: str = ""
) -> IngestResult:
    """Record, apply and acknowledge one message. Idempotent by control id: the same
    message again changes nothing and gets the same reply."""
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > MAX_MESSAGE_BYTES:
        return hl7_reject_oversized(
            head=raw[:4096], size=size, source=source, peer=peer, filename=filename
        )
    return _ingest(_read(raw), source=source, peer=peer, filename=filename, size=size)


def hl7_reject_oversized(
    *, head: str | bytes, size: int, source: str, peer: str = "", filename: str = ""
) -> IngestResult:
    """A message over MAX_MESSAGE_BYTES: recorded (without its text) and refused with AR,
    under its control id when the beginning of MSH can be read."""
    text = decode(head) if isinstance(head, str) else head.decode("utf-8", "replace")
    first = text.lstrip("\ufeff").replace("\r\n", "\r").replace("\n", "\r").split("\r", 1)[0]
    header = _header_or_none(first + "\r")
    read = _Read(
        text=f"{first}\r[{size} bytes]", header=header, parsed=None, problem=None, too_large=True
    )
    return _ingest(read, source=source, peer=peer, filename=filename, size=size)


def hl7_reprocess(*, by: User, message: Hl7Message) -> Hl7Message:
    """Send a rejected message through processing again (after its patient or doctor was
    linked, or a test type set up). Its reply is the new outcome's."""
    if not policies.can_reprocess_hl7_message(by):
        raise PermissionDenied
    if message.duplicate_of_id is not None:
        raise ValidationError(
            _("This row records a repeat or a reused control id; process the first one.")
        )
    with transaction.atomic():
        row = Hl7Message.objects.select_for_update().get(pk=message.pk)
        if row.state != Hl7State.REJECTED:
            raise ValidationError(_("Only rejected messages can be processed again."))
        if not row.raw or row.reason_code == Hl7Reason.TOO_LARGE:
            raise ValidationError(_("The text of this message was not kept."))
        read = _read(row.raw)
        _apply(row, read, actor=by, action=AuditAction.CHANGE)
    return row


def ack_for_unreadable(reason: str = "Internal error") -> str:
    """A NAK when not even recording the message worked (the database is down)."""
    return ackmod.build_ack(None, AckCode.ERROR, reason)


def ack_for_failure(raw: bytes | str) -> str:
    """A NAK (AE) for a message whose processing raised before any row was saved."""
    try:
        header = read_header(normalise(raw))
    except ParseError as exc:
        header = exc.header
    return ackmod.build_ack(header, AckCode.ERROR, "Internal error; send the message again.")
