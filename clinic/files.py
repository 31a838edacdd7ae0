"""Encrypted file storage and upload checks by content (DESIGN.md rules 3 and 7)."""

from __future__ import annotations

import io
import os

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


def validate_upload(upload: File, *, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """Return the content type recognised from the bytes; raise with a reason otherwise."""
    if upload.size is not None and upload.size > max_bytes:
        raise ValidationError(
            _("The file is too large: the limit is %(mb)d MB.")
            % {"mb": max_bytes // (1024 * 1024)},
            code="too_large",
        )
    upload.seek(0)
    head = upload.read(16)
    upload.seek(0)
    content_type = sniff_content_type(head)
    if content_type is None:
        raise ValidationError(
            _("This type of file is not accepted. Upload a PDF, JPEG or PNG."), code="wrong_type"
        )
    if content_type.startswith("image/"):
        _check_image(upload)
    return content_type


def _check_image(upload: File) -> None:
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
    except ValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken files
        raise ValidationError(_("The file could not be read."), code="unreadable") from exc
