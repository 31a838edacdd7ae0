"""Reading HL7 v2 messages.

1. `decode` and `normalise`: bytes to text (UTF-8, a BOM dropped; another character set
   only when MSH-18 names one), line ends to `\\r`, blank lines dropped.
2. `read_header`: MSH read by hand, so that even a message hl7apy refuses can be answered
   with a NAK naming its control id and recorded under its sender.
3. `parse`: hl7apy in TOLERANT mode checks that the message is HL7 v2 of a version it
   knows (with `find_groups`, and without it if grouping fails). Values are then read
   positionally from the segments' text (`Segment`): hl7apy's tree drops fields withdrawn
   in later versions (EVN-1 and SCH-9/SCH-11 in 2.8) and, when grouping, segments it
   cannot place (PRT in 2.5.1), so reading it would lose data the sender sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from django.conf import settings

# Character sets MSH-18 may name (HL7 table 0211 and common variants) -> Python codecs.
CHARSETS = {
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "8859/1": "latin-1",
    "8859/5": "iso8859_5",
    "CP1251": "cp1251",
    "WINDOWS-1251": "cp1251",
    "KOI8-R": "koi8_r",
}
BATCH_SEGMENTS = {"FHS", "FTS", "BHS", "BTS"}
DEFAULT_ENCODING_CHARS = "^~\\&"


class ParseError(Exception):
    """The text is not a message the portal can read. `reason` says why, in words that
    never quote the message's content."""

    def __init__(self, reason: str, *, header: Header | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.header = header


# --- Text -----------------------------------------------------------------------------


def _charset_of(data: bytes) -> str | None:
    """The codec MSH-18 names, read from the ASCII bytes of the first segment."""
    first = data.lstrip(b"\xef\xbb\xbf").split(b"\r", 1)[0].split(b"\n", 1)[0]
    if not first.startswith(b"MSH") or len(first) < 4:
        return None
    fields = first.split(first[3:4])
    if len(fields) < 18:
        return None
    name = fields[17].split(b"~", 1)[0].decode("ascii", "replace").strip().upper()
    return CHARSETS.get(name)


def decode(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw.lstrip("\ufeff")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        codec = _charset_of(raw)
        if codec is None or codec == "utf-8":
            raise ParseError(
                "The message is not UTF-8 and MSH-18 names no other known character set."
            ) from None
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            raise ParseError(
                f"The message is not valid in the character set MSH-18 names ({codec})."
            ) from None


def normalise(raw: bytes | str) -> str:
    """The message as the portal stores it: segments ended by `\\r`, no blank lines."""
    text = decode(raw).replace("\r\n", "\r").replace("\n", "\r")
    segments = [s.lstrip() for s in text.split("\r")]
    kept = [s for s in segments if s.strip()]
    return "".join(f"{s}\r" for s in kept)


def split_messages(text: str) -> list[str]:
    """The messages of a file: each MSH starts one; batch envelopes are dropped. Text
    before the first MSH is returned as a message of its own (it will be rejected), so
    nothing in a file goes unrecorded."""
    messages: list[list[str]] = []
    current: list[str] = []
    for segment in normalise(text).split("\r"):
        if not segment:
            continue
        name = segment[:3]
        if name in BATCH_SEGMENTS:
            continue
        if name == "MSH" and current:
            messages.append(current)
            current = []
        current.append(segment)
    if current:
        messages.append(current)
    return ["".join(f"{s}\r" for s in message) for message in messages]


# --- Escapes and segments --------------------------------------------------------------


@dataclass(frozen=True)
class Encoding:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @classmethod
    def of(cls, field_sep: str, chars: str) -> Encoding:
        chars = (chars or DEFAULT_ENCODING_CHARS) + DEFAULT_ENCODING_CHARS[len(chars or "") :]
        return cls(field_sep, chars[0], chars[1], chars[2], chars[3])

    @property
    def chars(self) -> str:
        return f"{self.component}{self.repetition}{self.escape}{self.subcomponent}"

    def unescape(self, value: str) -> str:
        if not value or self.escape not in value:
            return value
        e = re.escape(self.escape)
        pattern = re.compile(f"{e}(.*?){e}")

        def replace(match: re.Match[str]) -> str:
            code = match.group(1)
            simple = {
                "F": self.field,
                "S": self.component,
                "R": self.repetition,
                "E": self.escape,
                "T": self.subcomponent,
                ".br": "\n",
                ".sp": "\n",
                "H": "",
                "N": "",
            }
            if code in simple:
                return simple[code]
            if code.startswith("X") and re.fullmatch(r"X(?:[0-9A-Fa-f]{2})+", code):
                return bytes.fromhex(code[1:]).decode("utf-8", "replace")
            if code.startswith("."):
                return ""  # other formatting commands (.in, .ti, .sk, .ce, .fi, .nf)
            return match.group(0)

        return pattern.sub(replace, value)

    def escape_text(self, value: str) -> str:
        """Our own text (ACK messages) made safe to put in a field."""
        out = value.replace(self.escape, f"{self.escape}E{self.escape}")
        for char, code in (
            (self.field, "F"),
            (self.component, "S"),
            (self.repetition, "R"),
            (self.subcomponent, "T"),
        ):
            out = out.replace(char, f"{self.escape}{code}{self.escape}")
        return out.replace("\r", " ").replace("\n", " ")


HL7_NULL = '""'


@dataclass
class Segment:
    """One segment, read positionally: `value(3, 1)` is field 3, component 1 of the first
    repetition, unescaped. For MSH, field 1 is the field separator, as in the standard."""

    text: str
    encoding: Encoding
    fields: list[str] = field(init=False)

    def __post_init__(self) -> None:
        parts = self.text.split(self.encoding.field)
        if parts[0] == "MSH":
            parts = ["MSH", self.encoding.field, *parts[1:]]
        self.fields = parts

    @property
    def name(self) -> str:
        return self.fields[0]

    def raw(self, n: int) -> str:
        return self.fields[n] if 0 < n < len(self.fields) else ""

    def repetitions(self, n: int) -> list[str]:
        raw = self.raw(n)
        if self.name == "MSH" and n <= 2:
            return [raw]
        return raw.split(self.encoding.repetition) if raw else []

    def components(self, n: int, rep: int = 0) -> list[str]:
        reps = self.repetitions(n)
        if rep >= len(reps):
            return []
        return reps[rep].split(self.encoding.component)

    def value(self, n: int, component: int = 1, sub: int = 1, rep: int = 0) -> str:
        comps = self.components(n, rep)
        if component - 1 >= len(comps):
            return ""
        subs = comps[component - 1].split(self.encoding.subcomponent)
        if sub - 1 >= len(subs):
            return ""
        return self.encoding.unescape(subs[sub - 1]).strip()

    def parts(self, n: int, component: int = 1, rep: int = 0) -> list[str]:
        """Every subcomponent of one component, unescaped."""
        comps = self.components(n, rep)
        if component - 1 >= len(comps):
            return []
        subs = comps[component - 1].split(self.encoding.subcomponent)
        return [self.encoding.unescape(sub).strip() for sub in subs]

    def text_of(self, n: int, rep: int = 0) -> str:
        """A whole field (one repetition) as text: components joined as sent, unescaped."""
        reps = self.repetitions(n)
        return self.encoding.unescape(reps[rep]).strip() if rep < len(reps) else ""

    def is_null(self, n: int) -> bool:
        """HL7's explicit "delete this value" (`""`), as opposed to an empty field."""
        return self.raw(n) == HL7_NULL


# --- Header -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    encoding: Encoding
    msh: Segment
    control_id: str
    message_type: str
    trigger_event: str
    structure: str
    version: str
    processing_id: str

    @property
    def sending_application(self) -> str:
        return _hd_name(self.msh, 3)

    @property
    def sending_facility(self) -> str:
        return _hd_name(self.msh, 4)

    @property
    def system(self) -> str:
        """How links and lab reports name this sender: "hl7:<facility>" (the application
        when the facility is empty)."""
        return f"hl7:{self.sending_facility or self.sending_application or 'unknown'}"

    @property
    def sent_at(self) -> datetime | None:
        return parse_datetime(self.msh.value(7))


def _hd_name(msh: Segment, n: int) -> str:
    """An HD field's namespace id, else its universal id."""
    return (msh.value(n, 1) or msh.value(n, 2))[:227]


def read_header(text: str) -> Header:
    if not text.startswith("MSH") or len(text) < 8:
        raise ParseError("The message does not start with an MSH segment.")
    field_sep = text[3]
    if field_sep.isalnum() or field_sep in "\r\n ":
        raise ParseError("MSH-1 (the field separator) is not valid.")
    first = text.split("\r", 1)[0]
    chars = first[4:].split(field_sep, 1)[0]
    if not 4 <= len(chars) <= 5 or len(set(chars[:4])) != 4 or field_sep in chars:
        raise ParseError("MSH-2 (the encoding characters) is not valid.")
    encoding = Encoding.of(field_sep, chars)
    msh = Segment(first, encoding)
    header = Header(
        encoding=encoding,
        msh=msh,
        control_id=msh.value(10)[:199],
        message_type=msh.value(9, 1).upper()[:3],
        trigger_event=msh.value(9, 2).upper()[:3],
        structure=msh.value(9, 3).upper()[:7],
        version=msh.value(12, 1)[:16],
        processing_id=msh.value(11, 1)[:3],
    )
    if not header.control_id:
        raise ParseError("MSH-10 (the message control id) is empty.", header=header)
    if not header.message_type:
        raise ParseError("MSH-9 (the message type) is empty.", header=header)
    return header


# --- Parsing with hl7apy -------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    header: Header
    segments: list[Segment]
    text: str

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]


def _hl7apy_check(text: str) -> None:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.exceptions import HL7apyException
    from hl7apy.parser import parse_message

    body = text.rstrip("\r")
    error: Exception | None = None
    for find_groups in (True, False):
        try:
            parse_message(body, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=find_groups)
            return
        except (HL7apyException, ValueError, KeyError, IndexError, AttributeError) as exc:
            error = exc
    name = type(error).__name__
    detail = str(error).splitlines()[0][:160] if str(error) else ""
    raise ParseError(f"hl7apy cannot read the message ({name}: {detail}).".replace(" ()", ""))


def parse(text: str, *, check: bool = True) -> Parsed:
    """Check (with hl7apy, unless `check` is False) and split a normalised message.
    Raises ParseError."""
    header = read_header(text)
    if check:
        try:
            _hl7apy_check(text)
        except ParseError as exc:
            raise ParseError(exc.reason, header=header) from None
    segments = [Segment(s, header.encoding) for s in text.split("\r") if s]
    for segment in segments:
        if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", segment.name):
            raise ParseError("A segment has no valid three-letter name.", header=header)
    return Parsed(header=header, segments=segments, text=text)


# --- Values ----------------------------------------------------------------------------------

_TS = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?\s*([+-]\d{4})?$"
)


def clinic_zone() -> ZoneInfo:
    return ZoneInfo(getattr(settings, "CLINIC_TIME_ZONE", "Europe/Moscow"))


def parse_datetime(value: str) -> datetime | None:
    """An HL7 TS/DTM. Without an offset it is the clinic's local time (the MIS's)."""
    match = _TS.match((value or "").strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
        )
    except ValueError:
        return None
    if offset:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        return moment.replace(tzinfo=dt_timezone(sign * delta))
    return moment.replace(tzinfo=clinic_zone())


def parse_date(value: str) -> date | None:
    match = re.match(r"^(\d{4})(\d{2})(\d{2})", (value or "").strip())
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None
