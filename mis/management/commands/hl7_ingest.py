"""Ingest HL7 v2 messages from files: `manage.py hl7_ingest <file or directory>...`.

A file may hold one message or several (a batch: each MSH starts one; FHS/BHS/BTS/FTS
envelopes are dropped); a directory is walked for `*.hl7` files (`--pattern`). Each
message goes through the same path as over MLLP (recorded, applied or rejected with a
reason, idempotent by control id: running the command twice changes nothing). One line
per message, then a summary. Exit status 1 when a file cannot be read, or with
`--fail-on-reject` when a message was rejected.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mis.hl7.parse import ParseError, decode, split_messages
from mis.models import Hl7Source, Hl7State
from mis.services_hl7 import MAX_MESSAGE_BYTES, hl7_ingest


class Command(BaseCommand):
    help = "Ingest HL7 v2 messages from files or directories; print each outcome and a summary."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("paths", nargs="+", help="Files, or directories to walk")
        parser.add_argument(
            "--pattern", default="*.hl7", help="File names to take from directories (*.hl7)"
        )
        parser.add_argument(
            "--fail-on-reject",
            action="store_true",
            help="Exit with status 1 when any message was rejected",
        )

    def _files(self, paths: list[str], pattern: str) -> list[Path]:
        files: list[Path] = []
        for name in paths:
            path = Path(name)
            if path.is_dir():
                files += sorted(p for p in path.rglob(pattern) if p.is_file())
            elif path.is_file():
                files.append(path)
            else:
                raise CommandError(f"No such file or directory: {name}")
        return files

    def _messages(self, path: Path) -> list[str | bytes]:
        data = path.read_bytes()
        if len(data) > MAX_MESSAGE_BYTES * 50:
            raise CommandError(f"{path}: file too large ({len(data)} bytes)")
        try:
            return list(split_messages(decode(data)))
        except ParseError:
            return [data]  # not decodable: recorded and rejected as it is

    def handle(self, *args: Any, **options: Any) -> None:
        files = self._files(options["paths"], options["pattern"])
        states: Counter[str] = Counter()
        unreadable = 0
        for path in files:
            try:
                messages = self._messages(path)
            except OSError as exc:
                unreadable += 1
                self.stderr.write(f"{path}: cannot read ({exc.strerror})")
                continue
            if not messages:
                self.stdout.write(f"{path}: no message")
                continue
            for number, message in enumerate(messages, start=1):
                label = str(path) if len(messages) == 1 else f"{path} #{number}"
                result = hl7_ingest(raw=message, source=Hl7Source.FILE, filename=str(path))
                row = result.message_row
                states[row.state] += 1
                line = (
                    f"{label}: {row.state} {row.ack_code} {row.type_label or '?'} "
                    f"{row.control_id or '-'}"
                )
                if row.produced_kind:
                    line += f" -> {row.produced_kind} {','.join(map(str, row.produced_ids))}"
                if row.reason:
                    line += f" ({row.reason_code or 'note'}: {row.reason})"
                style = self.style.ERROR if row.state == Hl7State.REJECTED else self.style.SUCCESS
                self.stdout.write(style(line))
        total = sum(states.values())
        summary = ", ".join(f"{states[s]} {s}" for s in Hl7State.values if states[s])
        self.stdout.write(
            f"{len(files)} file(s), {total} message(s): {summary or 'nothing'}"
            + (f"; {unreadable} unreadable file(s)" if unreadable else "")
        )
        if unreadable or (options["fail_on_reject"] and states[Hl7State.REJECTED]):
            raise SystemExit(1)
