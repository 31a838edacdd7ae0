"""Receive HL7 v2 messages over MLLP: `manage.py hl7_listen --port 2575 [--host 127.0.0.1]`.

Runs in the foreground until SIGTERM or Ctrl-C (a process manager or the `hl7` Compose
service keeps it up). Every message is recorded and answered: AA when applied, AR when
refused (the reason is in the admin, "HL7 v2 messages"), AE when processing failed on
our side (the sender should send it again).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mis.hl7 import mllp


class Command(BaseCommand):
    help = "Listen for HL7 v2 messages over MLLP and answer each with an ACK or NAK."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server: mllp.MllpServer | None = None
        self.ready = threading.Event()  # set once listening (tests start it in a thread)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, required=True, help="TCP port (0: any free one)")
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="Address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)",
        )
        parser.add_argument(
            "--max-bytes",
            type=int,
            default=mllp.DEFAULT_MAX_BYTES,
            help="Largest message accepted, in bytes (larger ones are refused with AR)",
        )
        parser.add_argument(
            "--idle-timeout",
            type=float,
            default=mllp.DEFAULT_IDLE_TIMEOUT,
            help="Seconds a connection may stay silent before it is closed",
        )
        parser.add_argument(
            "--max-connections",
            type=int,
            default=mllp.DEFAULT_MAX_CONNECTIONS,
            help="Connections served at once (each holds a database connection)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.server = mllp.MllpServer(
                (options["host"], options["port"]),
                max_bytes=options["max_bytes"],
                idle_timeout=options["idle_timeout"],
                max_connections=options["max_connections"],
            )
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc.strerror}"
            ) from exc
        server = self.server
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: threading.Thread(target=server.stop).start())
        host, port = server.server_address[:2]
        self.stdout.write(f"Listening for HL7 v2 (MLLP) on {host}:{port}")
        self.stdout.flush()
        self.ready.set()
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()
        self.stdout.write("HL7 listener stopped")
