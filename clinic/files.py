"""Encrypted file storage and upload checks by content (DESIGN.md rules 3 and 7)."""

from __future__ import annotations

import io
import os
import re
import zlib

from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext as _

from clinic.crypto import current_key, keyring

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000

SIGNATURES = {
    b"%PDF-": "application/pdf",
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
}


@deconstructible
class EncryptedFileSystemStorage(FileSystemStorage):
    """Files are Fernet-encrypted with the current key on save and decrypted on open."""

    def _save(self, name: str, content: File) -> str:
        content.seek(0)
        token = current_key().encrypt(content.read())
        return super()._save(name, ContentFile(token))

    def _open(self, name: str, mode: str = "rb") -> File:
        with super()._open(name, "rb") as stored:
            plaintext = keyring().decrypt(stored.read())
        return ContentFile(plaintext, name=name)

    def rotate(self, name: str) -> bool:
        """Re-encrypt a stored file with the current key in place; False if already current."""
        path = self.path(name)
        with open(path, "rb") as stored:
            token = stored.read()
        try:
            current_key().decrypt(token)
        except InvalidToken:
            rotated = keyring().rotate(token)
            tmp = f"{path}.rotating"
            with open(tmp, "wb") as out:
                out.write(rotated)
            os.replace(tmp, path)
            return True
        return False

    def size(self, name: str) -> int:
        return len(self._open(name).read())


def sniff_content_type(head: bytes) -> str | None:
    for signature, content_type in SIGNATURES.items():
        if head.startswith(signature):
            return content_type
    return None


def validate_upload(
    upload: File, *, max_bytes: int = MAX_UPLOAD_BYTES, strict: bool = False
) -> str:
    """Return the content type recognised from the bytes; raise with a reason otherwise.

    `strict` (documents of a medical record) also rejects an empty file, an image with
    other data after its end (a file hidden behind a picture), an image that does not
    decode to the end, and a PDF that is incomplete, password-protected, carries scripts,
    launch actions or attached files, or whose compressed streams inflate past a bound.
    Error codes: too_large, wrong_type, unreadable, too_many_pixels, extra_data,
    active_content, decompression_bomb."""
    if upload.size is not None and upload.size > max_bytes:
        raise ValidationError(
            _("The file is too large: the limit is %(mb)d MB.")
            % {"mb": max_bytes // (1024 * 1024)},
            code="too_large",
        )
    upload.seek(0)
    head = upload.read(16)
    upload.seek(0)
    if strict and not head:
        raise ValidationError(_("The file is empty."), code="unreadable")
    content_type = sniff_content_type(head)
    if content_type is None:
        raise ValidationError(
            _("This type of file is not accepted. Upload a PDF, JPEG or PNG."), code="wrong_type"
        )
    if content_type.startswith("image/"):
        _check_image(upload, strict=strict)
    elif strict:
        _check_pdf(upload)
    return content_type


def _check_image(upload: File, *, strict: bool = False) -> None:
    from PIL import Image

    data = upload.read()
    upload.seek(0)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValidationError(
                    _("The image is too large in pixels."), code="too_many_pixels"
                )
            image.verify()
        if strict:
            # verify() reads no pixel data: decode it all, so a truncated image fails
            # here rather than in front of a clinician. The pixel bound above caps memory.
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except ValidationError:
        raise
    except Image.DecompressionBombError as exc:  # past Pillow's own bound, before ours
        raise ValidationError(
            _("The image is too large in pixels."), code="too_many_pixels"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken files
        raise ValidationError(_("The file could not be read."), code="unreadable") from exc
    if strict:
        end = _png_end(data) if data.startswith(b"\x89PNG") else _jpeg_end(data)
        if end is None:
            raise ValidationError(_("The file could not be read."), code="unreadable")
        if data[end:].strip(b"\x00\r\n\t ") != b"":
            raise ValidationError(
                _(
                    "The file holds other data after the picture (a motion photo, or "
                    "something hidden in it). Save it as a plain picture and upload that."
                ),
                code="extra_data",
            )


def _png_end(data: bytes) -> int | None:
    """The offset just past the IEND chunk, or None if the chunks do not add up."""
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        if pos > len(data):
            return None
        if kind == b"IEND":
            return pos
    return None


def _jpeg_end(data: bytes) -> int | None:
    """The offset just past the EOI marker that ends the image, found by walking the
    segments (an embedded EXIF thumbnail has its own EOI inside a segment)."""
    pos, size = 2, len(data)
    while pos + 2 <= size:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > size:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            while pos + 1 < size:
                following = data[pos + 1]
                if data[pos] == 0xFF and following != 0x00 and not 0xD0 <= following <= 0xD7:
                    break
                pos += 1
    return None


# Names in a PDF that run code, start programs or carry other files along.
_PDF_ACTIVE = re.compile(rb"/(?:JavaScript|JS|Launch|EmbeddedFiles?|RichMedia|XFA)(?![A-Za-z0-9])")
_PDF_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_PDF_STREAM = re.compile(rb"(?<!end)stream\r?\n")
# Bounds on what the compressed streams of one uploaded PDF may inflate to.
PDF_MAX_INFLATED_BYTES = 100 * 1024 * 1024
PDF_MAX_INFLATE_RATIO = 200


def _check_pdf(upload: File) -> None:
    data = upload.read()
    upload.seek(0)
    if b"%%EOF" not in data[-1024:]:
        raise ValidationError(
            _("The PDF is damaged or incomplete. Save it again and upload the new copy."),
            code="unreadable",
        )
    plain = _PDF_NAME_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)
    if re.search(rb"/Encrypt(?![A-Za-z0-9])", plain):
        raise ValidationError(
            _("The PDF is protected by a password. Upload a copy without the password."),
            code="unreadable",
        )
    if _PDF_ACTIVE.search(plain) or any(
        _PDF_ACTIVE.search(_PDF_NAME_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), chunk))
        for chunk in _inflated_streams(data)
    ):
        raise ValidationError(
            _(
                "The PDF contains scripts or attached files, which are not accepted. "
                "Print it to a new PDF and upload that."
            ),
            code="active_content",
        )


def _inflated_streams(data: bytes):  # noqa: ANN202 - a generator of bytes
    """Each Flate-compressed stream of a PDF, inflated within PDF_MAX_INFLATED_BYTES in
    all and PDF_MAX_INFLATE_RATIO times the file's size (a decompression bomb fails)."""
    budget = min(PDF_MAX_INFLATED_BYTES, max(len(data), 1024 * 1024) * PDF_MAX_INFLATE_RATIO)
    for match in _PDF_STREAM.finditer(data):
        end = data.find(b"endstream", match.end())
        if end < 0:
            break
        raw = data[match.end() : end]
        inflater = zlib.decompressobj()
        try:
            chunk = inflater.decompress(raw, budget + 1)
        except zlib.error:
            continue  # not Flate (images, other filters): nothing to read in it
        budget -= len(chunk)
        if budget < 0 or inflater.unconsumed_tail:
            raise ValidationError(
                _("The PDF expands to far more data than it holds, so it is not accepted."),
                code="decompression_bomb",
            )
        yield chunk
