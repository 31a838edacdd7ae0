"""Cost of the audit hash chain: `audit_record` (advisory lock, read the head, SHA-256,
insert) against a plain INSERT of the same row, one transaction per event, with 1 and 4
writer threads in the same run.

    .venv/bin/python bench/audit_chain.py [--events 2000]

Prints both figures and their ratio for each thread count, and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time

from _django import django_with_scratch_db


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000, help="per run, over all threads")
    args = parser.parse_args()

    with django_with_scratch_db("audit_chain"):
        from django.db import connection, transaction

        from audit.chain import GENESIS_HASH
        from audit.models import AuditAction
        from audit.services import audit_record

        detail = {"via": "bench", "fields": ["result", "note"]}
        with connection.cursor() as cursor:
            # Same columns, constraints and indexes; no trigger, no chain.
            cursor.execute("CREATE TABLE bench_plain_event (LIKE audit_auditevent INCLUDING ALL)")
        plain_seq = itertools.count(1)
        seq_lock = threading.Lock()

        def chained() -> None:
            with transaction.atomic():
                audit_record(
                    actor=None,
                    action=AuditAction.VIEW,
                    object_type="records.labresult",
                    object_id=12345,
                    detail=detail,
                )

        def plain() -> None:
            with seq_lock:
                seq = next(plain_seq)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO bench_plain_event (seq, occurred_at, actor_role, action, "
                    "object_type, object_id, request_id, user_agent, reason, detail, "
                    "break_glass, prev_hash, hash) VALUES "
                    "(%s, now(), '', 'view', 'records.labresult', '12345', '', '', '', %s, "
                    "false, %s, %s)",
                    [seq, json.dumps(detail), GENESIS_HASH, f"{seq:064x}"],
                )

        def run(write, threads: int) -> float:
            each = args.events // threads
            start = threading.Barrier(threads + 1)

            def worker() -> None:
                try:
                    start.wait()
                    for _ in range(each):
                        write()
                finally:
                    connection.close()

            workers = [threading.Thread(target=worker) for _ in range(threads)]
            for w in workers:
                w.start()
            start.wait()
            started = time.perf_counter()
            for w in workers:
                w.join()
            return each * threads / (time.perf_counter() - started)

        run(chained, 1), run(plain, 1)  # warm up connections and caches
        result: dict[str, object] = {"bench": "audit_chain", "events": args.events}
        for threads in (1, 4):
            chain_rate, plain_rate = run(chained, threads), run(plain, threads)
            ratio = round(plain_rate / chain_rate, 2)
            result[f"chained_events_per_s_{threads}t"] = round(chain_rate)
            result[f"plain_events_per_s_{threads}t"] = round(plain_rate)
            result[f"ratio_{threads}t"] = ratio
            print(
                f"{threads} thread(s): audit_record {round(chain_rate)} events/s, "
                f"plain insert {round(plain_rate)} events/s, ratio {ratio}"
            )
        import io

        from django.core.management import call_command

        checked = io.StringIO()
        call_command("verify_audit_chain", stdout=checked)  # raises if the chain broke
        print(checked.getvalue().splitlines()[0])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
