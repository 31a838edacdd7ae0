"""A real SMTP server on loopback (aiosmtpd) for tests and benchmarks.

`SmtpServer` listens on 127.0.0.1 on a port the kernel picks, keeps every message it
accepts (parsed with the `email` package: decoded subject and text body, the envelope's
recipients) and can be put on hold: the next DATA exchange then waits, after the client
has sent the whole message and before the server answers, until the test releases it
with "250 accepted" or "451 try again later". A test can kill the sending process while
the exchange is held and know the message was never accepted.

The `smtp_server` fixture starts one and points Django's SMTP backend at it (for code in
the test process); `server.email_url` configures a subprocess through EMAIL_URL.
"""

from __future__ import annotations

import asyncio
import email
import logging
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.utils import getaddresses

import pytest
from aiosmtpd.controller import Controller

ACCEPTED = "250 2.0.0 Message accepted for delivery"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, try again later"


@dataclass(frozen=True)
class ReceivedEmail:
    mail_from: str
    recipients: tuple[str, ...]  # the envelope's RCPT TO addresses
    to: tuple[str, ...]  # the To: header's addresses
    subject: str
    body: str  # the text/plain part, decoded
    message_id: str
    raw: bytes = field(repr=False)

    @property
    def text(self) -> str:
        """Subject and body together, for "does the message say X" checks."""
        return f"{self.subject}\n{self.body}"


def parse_message(raw: bytes, *, mail_from: str = "", recipients=()) -> ReceivedEmail:  # noqa: ANN001
    message = email.message_from_bytes(raw, policy=policy.default)
    part = message.get_body(preferencelist=("plain",))
    body = part.get_content() if part is not None else ""
    return ReceivedEmail(
        mail_from=mail_from,
        recipients=tuple(recipients),
        to=tuple(address for _name, address in getaddresses(message.get_all("To", []))),
        subject=str(message.get("Subject", "")),
        body=body,
        message_id=str(message.get("Message-ID", "")),
        raw=raw,
    )


class _Handler:
    """aiosmtpd handler: stores accepted messages, holds DATA when asked."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, _smtp, _session, envelope) -> str:  # noqa: ANN001, N802
        server = self.server
        with server._lock:  # noqa: SLF001
            hold = server._hold_after is not None and server._hold_after <= 0  # noqa: SLF001
            if server._hold_after is not None:  # noqa: SLF001
                server._hold_after -= 1  # noqa: SLF001
            if hold:
                server._hold_after = None  # noqa: SLF001 - one exchange per hold()
                server.held += 1
        if hold:
            server._holding.set()  # noqa: SLF001
            try:
                while not server._released.is_set():  # noqa: SLF001
                    await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                # The client went away while we held its message: never accepted.
                with server._lock:  # noqa: SLF001
                    server.aborted += 1
                raise
            finally:
                server._holding.clear()  # noqa: SLF001
            answer = server._answer  # noqa: SLF001
            server._released.clear()  # noqa: SLF001
            if answer != ACCEPTED:
                with server._lock:  # noqa: SLF001
                    server.refused += 1
                return answer
        received = None
        if server.keep_messages:
            raw = envelope.original_content or envelope.content
            if isinstance(raw, str):
                raw = raw.encode()
            received = parse_message(
                raw, mail_from=envelope.mail_from, recipients=envelope.rcpt_tos
            )
        with server._changed:  # noqa: SLF001
            server.accepted += 1
            if received is not None:
                server._messages.append(received)  # noqa: SLF001
            server._changed.notify_all()  # noqa: SLF001
        return ACCEPTED


class _Controller(Controller):
    """Controller on a port the kernel picks (port 0): aiosmtpd's own start-up check
    connects to `self.port`, so learn the real one from the listening socket first."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    host = "127.0.0.1"

    def __init__(self, *, keep_messages: bool = True) -> None:
        # keep_messages=False: count accepted messages only (a benchmark's sink).
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._messages: list[ReceivedEmail] = []
        self._hold_after: int | None = None
        self._holding = threading.Event()
        self._released = threading.Event()
        self._answer = TEMPORARY_FAILURE
        self.accepted = 0  # messages answered with 250
        self.held = 0  # DATA exchanges put on hold
        self.aborted = 0  # held exchanges whose client went away before the answer
        self.refused = 0  # held exchanges answered with a temporary failure
        self.keep_messages = keep_messages
        self._controller = _Controller(_Handler(self), hostname=self.host, port=0)

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> SmtpServer:
        # aiosmtpd logs every SMTP command (with the recipients' addresses) at INFO.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._released.set()  # a held handler must not keep the loop from stopping
        self._controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def email_url(self) -> str:
        """For django-environ's `email_url` (the EMAIL_URL variable of a subprocess)."""
        return f"smtp://{self.host}:{self.port}"

    # --- received messages ----------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedEmail]:
        with self._lock:
            return list(self._messages)

    def messages_to(self, address: str) -> list[ReceivedEmail]:
        address = address.lower()
        return [m for m in self.messages if address in (r.lower() for r in m.recipients)]

    def count_by_recipient(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for message in self.messages:
            for recipient in message.recipients:
                counts[recipient.lower()] = counts.get(recipient.lower(), 0) + 1
        return counts

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedEmail]:
        """Until at least `count` messages were accepted (or the timeout); returns them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.accepted < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self.accepted = 0

    # --- hold and release ---------------------------------------------------------------

    def hold(self, *, after: int = 0) -> None:
        """Accept `after` more messages as usual, then hold the next DATA exchange (the
        client has sent the message and waits for the answer) until `release()`."""
        with self._lock:
            self._released.clear()
            self._hold_after = after

    def wait_held(self, timeout: float = 30.0) -> bool:
        """True once a DATA exchange is being held."""
        return self._holding.wait(timeout)

    def release(self, *, accept: bool = False) -> None:
        """Answer the held exchange: 250 (`accept`) or 451, a temporary failure."""
        with self._lock:
            self._hold_after = None
            self._answer = ACCEPTED if accept else TEMPORARY_FAILURE
        self._released.set()


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on loopback; Django's email in this process goes to it."""
    server = SmtpServer().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = server.host
    settings.EMAIL_PORT = server.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""  # noqa: S105
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    try:
        yield server
    finally:
        server.stop()
