"""Walk the audit trail in `seq` order and recompute every link of the hash chain.

    manage.py verify_audit_chain [--batch-size 5000] [--anchor SEQ:HASH ...]

Exit 0 with "OK: N events, chain intact"; on the first problem, exit 1 naming the row
(id and seq) and what is wrong with it:

- removed: a gap in `seq` (rows taken out, or the first row is not seq 1);
- out of order / inserted: `prev_hash` is not the previous row's hash;
- altered: the row's content no longer gives its stored hash.

The chain alone cannot see the newest rows cut off or the whole tail rewritten by someone
who can run SQL; `--anchor` checks the chain against hashes kept elsewhere (the head
printed on success, exported daily). See docs/adr/0006-audit-hash-chain.md.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.chain import CHAINED_FIELDS, GENESIS_HASH, link_hash
from audit.models import AuditEvent

_ANCHOR = re.compile(r"^(\d+):([0-9a-f]{64})$")


def _anchor(value: str) -> tuple[int, str]:
    match = _ANCHOR.match(value.strip().lower())
    if not match:
        raise CommandError(f"--anchor wants SEQ:SHA256HEX, not {value!r}")
    return int(match.group(1)), match.group(2)


class ChainBroken(Exception):
    def __init__(self, row: dict[str, Any] | None, problem: str) -> None:
        where = f"row id={row['id']} seq={row['seq']}: " if row else ""
        super().__init__(f"{where}{problem}")


def verify_chain(*, batch_size: int = 5000, anchors: dict[int, str] | None = None) -> dict:
    """Check the whole chain; raise ChainBroken at the first problem. Returns the count
    and the head (last seq and hash) on success."""
    anchors = dict(anchors or {})
    rows = (
        AuditEvent.objects.order_by("seq")
        .values("id", "prev_hash", "hash", *CHAINED_FIELDS)
        .iterator(chunk_size=batch_size)
    )
    count, last_seq, last_hash = 0, 0, GENESIS_HASH
    # Closed on the way out, also when a broken link stops the walk half-way, so the
    # server-side cursor is released inside the transaction that opened it.
    with contextlib.closing(rows):
        for row in rows:
            if row["seq"] != last_seq + 1:
                if last_seq == 0:
                    problem = f"removed: the chain starts at seq {row['seq']}, not 1"
                else:
                    problem = (
                        f"removed: gap in seq after {last_seq} "
                        f"({row['seq'] - last_seq - 1} row(s) missing)"
                    )
                raise ChainBroken(row, problem)
            if row["prev_hash"] != last_hash:
                raise ChainBroken(
                    row,
                    "out of order or inserted: prev_hash does not match the previous row's hash",
                )
            if link_hash(row["prev_hash"], row) != row["hash"]:
                raise ChainBroken(row, "altered: the stored hash does not match the row's content")
            expected = anchors.pop(row["seq"], None)
            if expected is not None and expected != row["hash"]:
                raise ChainBroken(row, "rewritten: the hash differs from the anchor given")
            count, last_seq, last_hash = count + 1, row["seq"], row["hash"]
    if anchors:
        missing = min(anchors)
        raise ChainBroken(
            None,
            f"removed: anchored seq {missing} is past the end of the chain (last seq {last_seq})",
        )
    return {"count": count, "last_seq": last_seq, "last_hash": last_hash}


class Command(BaseCommand):
    help = "Recompute the audit trail's hash chain and report the first broken link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument(
            "--anchor",
            action="append",
            default=[],
            type=_anchor,
            metavar="SEQ:HASH",
            help="a (seq, hash) pair recorded earlier outside the database; may repeat",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = verify_chain(batch_size=options["batch_size"], anchors=dict(options["anchor"]))
        except ChainBroken as broken:
            raise CommandError(f"Audit chain broken at {broken}") from None
        self.stdout.write(f"OK: {result['count']} events, chain intact")
        if result["count"]:
            self.stdout.write(f"head: seq {result['last_seq']} hash {result['last_hash']}")
