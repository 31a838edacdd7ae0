"""Upload size limit enforced while the request body is read.

Django writes an upload to a temporary file before any view sees it, so a check in the
service alone would let a 2 GB body fill the disk first. `limit_uploads(request, max)`
puts a handler in front that stops storing a file as soon as it passes the limit (the
rest of the body is read and dropped) and tells the view, which answers "too large".
It must run before anything reads request.POST: the view is csrf_exempt and checks the
CSRF token itself afterwards (`csrf_protect` on the inner function), as Django's docs on
changing upload handlers describe.
"""

from __future__ import annotations

from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest

# A little room for the multipart framing and the small text fields around the file.
FRAMING_BYTES = 64 * 1024


class SizeLimitUploadHandler(FileUploadHandler):
    def __init__(self, request: HttpRequest | None = None, *, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.too_large = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):  # noqa: ANN001, ANN201, N803
        if content_length and content_length > self.max_bytes + FRAMING_BYTES:
            self.too_large = True
        return None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if self.too_large or start + len(raw_data) > self.max_bytes:
            self.too_large = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def limit_uploads(request: HttpRequest, max_bytes: int) -> SizeLimitUploadHandler:
    handler = SizeLimitUploadHandler(request, max_bytes=max_bytes)
    request.upload_handlers.insert(0, handler)
    return handler
