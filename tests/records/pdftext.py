"""Text out of a PDF, for tests: enough of the format to read what WeasyPrint writes.

No PDF library is installed (pypdf is not a dependency, pdftotext not on every machine),
and checking bytes alone cannot prove that Cyrillic text is there: WeasyPrint embeds font
subsets and writes glyph ids, so the words exist only through each font's ToUnicode map.
This reads the objects (plain and in compressed object streams), each page's fonts and
their ToUnicode maps, and the text operators (Tf, Tj, TJ) of the content streams.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

_OBJ = re.compile(rb"(\d+)\s+(\d+)\s+obj\b")
_REF = rb"(\d+)\s+0\s+R"


@dataclass
class Pdf:
    objects: dict[int, tuple[bytes, bytes | None]]

    def body(self, num: int) -> bytes:
        return self.objects[num][0]

    def stream(self, num: int) -> bytes:
        data = self.objects[num][1]
        assert data is not None, f"object {num} has no stream"
        return data


def _inflate(head: bytes, raw: bytes) -> bytes:
    return zlib.decompress(raw) if b"/FlateDecode" in head else raw


def parse(pdf: bytes) -> Pdf:
    objects: dict[int, tuple[bytes, bytes | None]] = {}
    pos = 0
    while True:
        match = _OBJ.search(pdf, pos)
        if match is None:
            break
        num, start = int(match.group(1)), match.end()
        end = pdf.find(b"endobj", start)
        stream_at = pdf.find(b"stream", start)
        if 0 <= stream_at < end:
            head = pdf[start:stream_at]
            length = int(re.search(rb"/Length\s+(\d+)", head).group(1))
            data_start = stream_at + 6
            data_start += 2 if pdf[data_start : data_start + 2] == b"\r\n" else 1
            raw = pdf[data_start : data_start + length]
            objects[num] = (head, _inflate(head, raw))
            end = pdf.find(b"endobj", data_start + length)
        else:
            objects[num] = (pdf[start:end], None)
        pos = end + 6
    # Objects packed into compressed object streams.
    for head, data in list(objects.values()):
        if data is None or b"/ObjStm" not in head:
            continue
        count = int(re.search(rb"/N\s+(\d+)", head).group(1))
        first = int(re.search(rb"/First\s+(\d+)", head).group(1))
        numbers = [int(x) for x in data[:first].split()]
        pairs = list(zip(numbers[0::2], numbers[1::2], strict=True))[:count]
        for i, (num, offset) in enumerate(pairs):
            stop = first + pairs[i + 1][1] if i + 1 < len(pairs) else len(data)
            objects.setdefault(num, (data[first + offset : stop], None))
    return Pdf(objects)


def _dict_entry(doc: Pdf, body: bytes, key: bytes) -> bytes:
    """The value of /key in a dictionary: an inline << >> or the body of a reference."""
    ref = re.search(rb"/" + key + rb"\s*" + _REF, body)
    if ref:
        return doc.body(int(ref.group(1)))
    inline = re.search(rb"/" + key + rb"\s*<<", body)
    if not inline:
        return b""
    depth, i = 0, inline.end() - 2
    while i < len(body):
        if body[i : i + 2] == b"<<":
            depth += 1
            i += 2
        elif body[i : i + 2] == b">>":
            depth -= 1
            i += 2
            if depth == 0:
                return body[inline.end() - 2 : i]
        else:
            i += 1
    return b""


def _cmap(data: bytes) -> dict[int, str]:
    mapping: dict[int, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", data, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            mapping[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be")
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", data, re.S):
        for lo, hi, dst in re.findall(
            rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block
        ):
            base = int(dst, 16)
            for offset, code in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                mapping[code] = chr(base + offset)
    return mapping


def _fonts(doc: Pdf, page: bytes) -> dict[bytes, dict[int, str]]:
    resources = _dict_entry(doc, page, b"Resources")
    font_dict = _dict_entry(doc, resources, b"Font")
    fonts: dict[bytes, dict[int, str]] = {}
    for name, num in re.findall(rb"/([A-Za-z0-9_.+-]+)\s*" + _REF, font_dict):
        font = doc.body(int(num))
        to_unicode = re.search(rb"/ToUnicode\s*" + _REF, font)
        fonts[name] = _cmap(doc.stream(int(to_unicode.group(1)))) if to_unicode else {}
    return fonts


def font_names(pdf: bytes) -> set[str]:
    doc = parse(pdf)
    names = set()
    for body, _ in doc.objects.values():
        for name in re.findall(rb"/BaseFont\s*/([A-Za-z0-9_+.-]+)", body):
            names.add(name.decode().split("+")[-1])
    return names


def page_count(pdf: bytes) -> int:
    doc = parse(pdf)
    return sum(1 for body, _ in doc.objects.values() if re.search(rb"/Type\s*/Page\b", body))


_TEXT_OP = re.compile(
    rb"/([A-Za-z0-9_.+-]+)\s+[\d.]+\s+Tf|\[(.*?)\]\s*TJ|<([0-9A-Fa-f]*)>\s*Tj|\bTm\b|\bTd\b|\bT\*",
    re.S,
)


def extract_text(pdf: bytes) -> str:
    """All text, page by page; a new line at each text positioning operator."""
    doc = parse(pdf)
    pages = [body for body, _ in doc.objects.values() if re.search(rb"/Type\s*/Page\b", body)]
    out: list[str] = []
    for page in pages:
        fonts = _fonts(doc, page)
        contents = re.search(rb"/Contents\s*(?:\[\s*((?:\d+\s+0\s+R\s*)+)\]|" + _REF + rb")", page)
        refs = (
            re.findall(rb"(\d+)\s+0\s+R", contents.group(1))
            if contents.group(1)
            else [contents.group(2)]
        )
        current: dict[int, str] = {}
        for ref in refs:
            for match in _TEXT_OP.finditer(doc.stream(int(ref))):
                font, array, single = match.groups()
                if font is not None:
                    current = fonts.get(font, {})
                    continue
                if array is None and single is None:
                    out.append("\n")
                    continue
                hexes = re.findall(rb"<([0-9A-Fa-f]*)>", array) if array is not None else [single]
                for chunk in hexes:
                    for i in range(0, len(chunk), 4):
                        out.append(current.get(int(chunk[i : i + 4], 16), "\ufffd"))
        out.append("\n\f")
    return re.sub(r"\n+", "\n", "".join(out))
