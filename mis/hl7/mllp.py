"""An MLLP listener: HL7 v2 messages over TCP, each framed as <VT> message <FS><CR>, each
answered with an ACK or NAK in the same framing on the same connection.

One thread per connection (a bounded number at once); a connection may carry any number
of messages, and a message may arrive in any number of TCP reads. Bytes outside a frame
are dropped; a frame larger than the limit is read to its end, not kept, and refused
(AR); a connection idle for longer than the timeout is closed. The database work of a
message runs in the connection's thread with its own connection, closed when the
connection ends (`close_old_connections` around every message, as Django does around
requests).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
END = FS + CR
HEAD_BYTES = 4096  # what is kept of an oversized message: enough for its MSH

DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_CONNECTIONS = 16


@dataclass(frozen=True)
class Frame:
    payload: bytes  # the whole message, or only its head when oversized
    size: int
    oversized: bool = False


class MllpFramer:
    """Turns a stream of reads into frames. Keeps at most `max_bytes` of a message."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.buffer = bytearray()
        self.in_frame = False
        self.oversized = False
        self.size = 0  # bytes of the current frame, counting those dropped
        self.head = b""
        self.dropped = 0  # bytes outside any frame, for the log

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        self.buffer += data
        while self.buffer:
            if not self.in_frame:
                start = self.buffer.find(VT)
                if start < 0:
                    self.dropped += len(self.buffer)
                    self.buffer.clear()
                    break
                self.dropped += start
                del self.buffer[: start + 1]
                self.in_frame, self.oversized, self.size, self.head = True, False, 0, b""
                continue
            end = self.buffer.find(END)
            if end >= 0:
                body = bytes(self.buffer[:end])
                del self.buffer[: end + len(END)]
                self.size += len(body)
                self.in_frame = False
                if self.oversized or self.size > self.max_bytes:
                    frames.append(Frame(self.head or body[:HEAD_BYTES], self.size, True))
                else:
                    frames.append(Frame(body, self.size))
                continue
            # No end yet: wait for more, unless the message is already too large. Keep the
            # last byte (it may be the FS of an FS CR split across reads).
            if self.oversized or len(self.buffer) > self.max_bytes:
                if not self.oversized:
                    self.head = bytes(self.buffer[:HEAD_BYTES])
                    self.oversized = True
                keep = self.buffer[-1:]
                self.size += len(self.buffer) - len(keep)
                self.buffer = bytearray(keep)
            break
        return frames


Processor = Callable[[Frame, str], str]


def ingest_frame(frame: Frame, peer: str) -> str:
    """Record and apply one message; the reply's text. Never raises: a failure before the
    message could be recorded is answered with AE, so the sender tries again."""
    from mis.models import Hl7Source
    from mis.services_hl7 import ack_for_failure, hl7_ingest, hl7_reject_oversized

    close_old_connections()
    try:
        if frame.oversized:
            result = hl7_reject_oversized(
                head=frame.payload, size=frame.size, source=Hl7Source.MLLP, peer=peer
            )
        else:
            result = hl7_ingest(raw=frame.payload, source=Hl7Source.MLLP, peer=peer)
        logger.info(
            "HL7 message #%s from %s: %s %s",
            result.message_row.pk,
            peer,
            result.message_row.state,
            result.ack_code,
        )
        return result.ack_text
    except Exception as exc:  # noqa: BLE001 - the sender must get a NAK, not silence
        logger.error("HL7 message from %s could not be recorded: %s", peer, type(exc).__name__)
        return ack_for_failure(frame.payload)
    finally:
        close_old_connections()


class _Handler(socketserver.BaseRequestHandler):
    server: MllpServer

    def handle(self) -> None:
        server = self.server
        peer = "%s:%s" % self.client_address[:2]  # noqa: UP031
        if not server.slots.acquire(blocking=False):
            logger.warning("HL7 connection from %s refused: too many connections", peer)
            return
        try:
            self._serve(peer)
        finally:
            server.slots.release()
            connection.close()  # this thread's database connection

    def _serve(self, peer: str) -> None:
        server = self.server
        sock: socket.socket = self.request
        sock.settimeout(server.idle_timeout)
        framer = MllpFramer(server.max_bytes)
        logger.info("HL7 connection from %s", peer)
        while not server.stopping.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                logger.info("HL7 connection from %s idle: closed", peer)
                return
            except OSError:
                return
            if not data:
                return
            for frame in framer.feed(data):
                reply = server.processor(frame, peer)
                try:
                    sock.sendall(VT + reply.encode("utf-8") + END)
                except OSError:
                    return
        if framer.dropped:
            logger.warning("HL7 connection from %s: %s bytes outside frames", peer, framer.dropped)


class MllpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        processor: Processor = ingest_frame,
        max_bytes: int = DEFAULT_MAX_BYTES,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.processor = processor
        self.max_bytes = max_bytes
        self.idle_timeout = idle_timeout
        self.slots = threading.BoundedSemaphore(max_connections)
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def stop(self) -> None:
        """Stop accepting; connections end after their current message."""
        self.stopping.set()
        self.shutdown()
        self.server_close()
