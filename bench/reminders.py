"""Reminders end to end: `--count` reminders come due at the same moment and go out
through real Celery workers (2 solo workers by default, on a private queue) to a real
SMTP server on loopback (aiosmtpd, accepting and counting). The sweep is called back to
back, as beat would call it, until every due row is queued (each run queues up to
SWEEP_BATCH rows); while the workers drain the queue, a beat run every `--beat-seconds`
also picks up rows whose message seems lost (QUEUE_LEASE), as in production.

Measured per reminder: due_at -> sent_at (p50/p99, the row's own timestamps) and the
overall rate (reminders sent / seconds from the moment they came due to the last one
sent). Baseline, through the same workers and queue in the same run: as many no-op tasks
(`clinic.ping`), published at once: tasks/s and publish -> done latency (p50/p99, the
result backend's date_done). Budget (DESIGN.md): a reminder sent within 60 s of its due
time. Correctness: the SMTP server accepts exactly `--count` messages (none twice).

    .venv/bin/python bench/reminders.py [--count 10000] [--workers 2] [--patients 200]

Setup (not measured): one doctor, `--patients` patients through the ordinary services,
the appointments (30-minute slots from two days ahead) and their 24 h reminder rows by
bulk insert, a warm-up of each task kind. Scratch database `bench_reminders`, dropped
afterwards; the queue is deleted from Redis; the workers are stopped by pid.

Prints both figures, their ratio, and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from _django import ROOT, django_with_scratch_db

BUDGET_S = 60.0


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def database_url_for(name: str) -> str:
    """DATABASE_URL with its database name replaced (TCP or unix-socket form)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{name}"))


def purge_queue(name: str) -> int:
    """Delete this run's Celery queue (and kombu's bookkeeping of it) from Redis; returns
    how many messages it still held."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    held = 0
    for key in list(client.scan_iter(match=f"*{name}*")):  # the queue, its priority lists
        if client.type(key) == b"list":
            held += client.llen(key)
        client.delete(key)
    for key in list(client.scan_iter(match="_kombu.binding.*")):
        if client.type(key) == b"set":
            for member in client.smembers(key):
                if name.encode() in member:
                    client.srem(key, member)
    client.close()
    return held


def _sink_main(conn) -> None:  # noqa: ANN001
    """The SMTP sink's own process (spawned), so its event loop never waits for this
    script's GIL: answers "count", "clear" and "stop" on the pipe."""
    from tests.smtp import SmtpServer  # the same SMTP server the tests use

    server = SmtpServer(keep_messages=False).start()
    conn.send(server.email_url)
    while True:
        command = conn.recv()
        if command == "count":
            conn.send(server.accepted)
        elif command == "clear":
            server.clear()
            conn.send(0)
        else:
            server.stop()
            conn.send(None)
            return


class Sink:
    """aiosmtpd on loopback in a process of its own, accepting and counting."""

    def __init__(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=_sink_main, args=(child,), daemon=True)
        self.proc.start()
        if not self.conn.poll(60):
            raise RuntimeError("the SMTP sink did not start")
        self.email_url = self.conn.recv()

    def _ask(self, command: str):  # noqa: ANN202
        self.conn.send(command)
        return self.conn.recv()

    def accepted(self) -> int:
        return int(self._ask("count"))

    def clear(self) -> None:
        self._ask("clear")

    def stop(self) -> None:
        if self.proc.is_alive():
            self._ask("stop")
            self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)


class Workers:
    """`--workers` solo Celery workers on the scratch database and the private queue."""

    def __init__(self, *, count: int, queue: str, database: str, email_url: str) -> None:
        self.queue = queue
        self.names = [f"{queue}-{n}@bench" for n in range(1, count + 1)]
        self.logs = []
        self.procs = []
        env = {
            **os.environ,
            "DJANGO_ENV": "test",
            "DATABASE_URL": database_url_for(database),
            "EMAIL_URL": email_url,
        }
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        for name in self.names:
            log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the run
                prefix="reminders_worker_", suffix=".log", delete=False
            )
            self.logs.append(log)
            self.procs.append(
                subprocess.Popen(  # noqa: S603
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "clinic",
                        "worker",
                        "--pool",
                        "solo",
                        "--queues",
                        queue,
                        "--hostname",
                        name,
                        "--without-gossip",
                        "--without-mingle",
                        "--loglevel",
                        "INFO",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def wait_ready(self, app, timeout: float = 60.0) -> None:  # noqa: ANN001
        """Every worker answers a remote-control ping."""
        deadline = time.monotonic() + timeout
        answered: set[str] = set()
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker exited early:\n{self.tail()}")
            for reply in app.control.ping(destination=self.names, timeout=0.5):
                answered.update(reply)
            if answered >= set(self.names):
                return
        raise RuntimeError(f"workers did not answer in {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        out = []
        for log in self.logs:
            log.flush()
            text = Path(log.name).read_text(errors="replace")
            out.append(f"--- {log.name}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)

    def stop(self, *, keep_logs: bool) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for log in self.logs:
            log.close()
            if not keep_logs:
                Path(log.name).unlink(missing_ok=True)


def build_data(*, count: int, warmup: int, patients: int) -> tuple[list[int], list[int]]:
    """A doctor, patients through the services, appointments and their 24 h reminder
    rows by bulk insert. Returns (measured reminder ids, warm-up reminder ids)."""
    from decimal import Decimal

    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
    from django.utils import timezone

    from accounts import services
    from accounts.models import Department, Location, Role, Specialty
    from notifications.models import Channel, Reminder
    from scheduling.models import Appointment, AppointmentStatus, ConsultationType

    services.consent_texts_ensure_published()
    services.roles_sync_groups()
    location = Location.objects.create(
        code="bench", name="Bench", address="ул. Тестовая, 1", time_zone="Europe/Moscow"
    )
    department = Department.objects.create(code="bench", name="Bench", location=location)
    specialty = Specialty.objects.create(code="bench", name_ru="Терапевт", name_en="GP")
    ctype = ConsultationType.objects.create(
        code="bench-visit",
        name_ru="Приём",
        name_en="Visit",
        specialty=specialty,
        duration_minutes=30,
        price=Decimal("2500"),
    )
    doctor = services.staff_create(
        by=None,
        email="doctor@bench.test",
        password=None,
        role=Role.DOCTOR,
        full_name="Doctor Bench",
        specialty=specialty,
        department=department,
        location=location,
    )
    ctype.doctors.add(doctor)
    profiles = [
        services.patient_register(
            email=f"patient{i}@bench.test",
            password=None,
            first_name="Анна",
            last_name=f"Иванова{i}",
            birth_date=None,
            phone="",
            language="ru" if i % 2 else "en",
            accept_health_data_consent=True,
            send_verification=False,
        ).patient_profile
        for i in range(patients)
    ]
    # Slots of 30 minutes from two days ahead: never overlapping, never "late".
    first = (timezone.now() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    total = count + warmup
    starts = [first + timedelta(minutes=30 * i) for i in range(total)]
    appointments = Appointment.objects.bulk_create(
        [
            Appointment(
                patient=profiles[i % len(profiles)],
                doctor=doctor,
                location=location,
                consultation_type=ctype,
                during=DateTimeTZRange(start, start + timedelta(minutes=30), "[)"),
                status=AppointmentStatus.BOOKED,
                price=ctype.price,
            )
            for i, start in enumerate(starts)
        ],
        batch_size=2000,
    )
    later = timezone.now() + timedelta(days=1)  # due when the run says so
    reminders = Reminder.objects.bulk_create(
        [
            Reminder(
                appointment=appointment,
                kind="24h",
                channel=Channel.EMAIL,
                appointment_starts_at=appointment.starts_at,
                due_at=later,
            )
            for appointment in appointments
        ],
        batch_size=2000,
    )
    ids = [r.pk for r in reminders]
    # One insert, one sequence: the ids are contiguous, so ranges select them cheaply.
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    return ids[warmup:], ids[:warmup]


def sweep_until_queued(ids: list[int]) -> tuple[int, int]:
    """Beat's sweep, back to back, until no due row is left; returns (runs, rows)."""
    from notifications.models import Reminder, ReminderState
    from notifications.services import reminders_sweep

    runs = rows = 0
    while True:
        queued = reminders_sweep()
        runs += 1
        rows += queued
        if (
            not queued
            and not Reminder.objects.filter(
                pk__range=(ids[0], ids[-1]), state=ReminderState.PENDING
            ).exists()
        ):
            return runs, rows


def send_reminders(ids: list[int], *, beat_seconds: float, deadline: float) -> dict:
    """Make the rows due now, sweep them into the queue and wait until all are sent."""
    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone

    from notifications.models import Reminder, ReminderState
    from notifications.services import reminders_sweep

    rows = Reminder.objects.filter(pk__range=(ids[0], ids[-1]))
    due = timezone.now()
    rows.update(due_at=due)
    started = time.perf_counter()
    runs, queued = sweep_until_queued(ids)
    sweep_s = time.perf_counter() - started
    next_beat = time.monotonic() + beat_seconds
    requeued = 0
    while rows.filter(state=ReminderState.SENT).count() < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError("reminders were not all sent before --max-seconds")
        if beat_seconds and time.monotonic() >= next_beat:
            requeued += reminders_sweep()  # what beat does meanwhile
            next_beat += beat_seconds
        time.sleep(0.5)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXTRACT(EPOCH FROM sent_at - due_at), EXTRACT(EPOCH FROM sent_at - %s) "
            "FROM notifications_reminder WHERE id BETWEEN %s AND %s",
            [due, ids[0], ids[-1]],
        )
        found = cursor.fetchall()
    delays = [float(d) for d, _ in found]
    span = max(float(s) for _, s in found)
    states = dict(rows.values_list("state").annotate(n=Count("id")).order_by())
    return {
        "delays": delays,
        "span": span,
        "sweep_runs": runs,
        "sweep_s": sweep_s,
        "queued": queued,
        "requeued": requeued,
        "states": states,
        "attempts": sum(rows.values_list("attempts", flat=True)),
    }


def send_noops(app, queue: str, count: int, *, deadline: float) -> dict:  # noqa: ANN001
    """`count` no-op tasks published at once; publish -> done latency per task."""
    from clinic.tasks import ping

    published: list[tuple[str, float]] = []
    first = time.time()
    for _ in range(count):
        result = ping.apply_async(queue=queue)
        published.append((result.id, time.time()))
    publish_s = time.time() - first
    done: dict[str, float] = {}
    ids = [task_id for task_id, _ in published]
    timeout = max(1.0, deadline - time.monotonic())
    for task_id, meta in app.backend.get_many(ids, timeout=timeout, interval=0.2):
        if meta.get("status") != "SUCCESS":
            raise RuntimeError(f"a no-op task ended {meta.get('status')}")
        finished = meta["date_done"]
        if isinstance(finished, str):
            finished = datetime.fromisoformat(finished)
        if finished.tzinfo is None:
            finished = finished.replace(tzinfo=UTC)
        done[task_id] = finished.timestamp()
    delays = [done[task_id] - at for task_id, at in published]
    return {"delays": delays, "span": max(done.values()) - first, "publish_s": publish_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000, help="reminders (and no-ops)")
    parser.add_argument("--workers", type=int, default=2, help="solo Celery workers")
    parser.add_argument("--patients", type=int, default=200, help="recipients of the reminders")
    parser.add_argument("--warmup", type=int, default=20, help="reminders and no-ops first")
    parser.add_argument(
        "--beat-seconds",
        type=float,
        default=60.0,
        help="a sweep this often while the queue drains, as beat (0: none)",
    )
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="deadline per phase")
    parser.add_argument("--scratch-name", default="reminders", help=argparse.SUPPRESS)
    args = parser.parse_args()

    with django_with_scratch_db(args.scratch_name):
        from django.conf import settings
        from django.db import connection

        from clinic.celery import app
        from notifications.services import SWEEP_BATCH

        started = time.perf_counter()
        ids, warm_ids = build_data(
            count=args.count, warmup=args.warmup, patients=min(args.patients, args.count)
        )
        setup_s = time.perf_counter() - started
        print(f"setup: {args.count} appointments with reminders in {setup_s:.1f} s")

        queue = f"bench-reminders-{os.getpid()}"
        app.conf.task_default_queue = queue  # the sweep's messages go to our workers
        sink = Sink()
        database = settings.DATABASES["default"]["NAME"]
        connection.close()
        workers = Workers(
            count=args.workers, queue=queue, database=database, email_url=sink.email_url
        )
        ok = False
        try:
            workers.wait_ready(app)
            # Warm-up (not measured): every worker has run both paths once or more.
            deadline = time.monotonic() + args.max_seconds
            send_noops(app, queue, args.warmup, deadline=deadline)
            send_reminders(warm_ids, beat_seconds=0, deadline=deadline)
            sink.clear()

            baseline = send_noops(
                app, queue, args.count, deadline=time.monotonic() + args.max_seconds
            )
            reminders = send_reminders(
                ids,
                beat_seconds=args.beat_seconds,
                deadline=time.monotonic() + args.max_seconds,
            )
            settle = time.monotonic() + 10  # the last 250 may trail the last row's write
            while sink.accepted() < args.count and time.monotonic() < settle:
                time.sleep(0.1)
            delivered = sink.accepted()
            ok = True
        finally:
            workers.stop(keep_logs=not ok)
            sink.stop()
            left_in_queue = purge_queue(queue)
            if not ok:
                print(workers.tail())

    r50, r99 = statistics.median(reminders["delays"]), percentile(reminders["delays"], 99)
    b50, b99 = statistics.median(baseline["delays"]), percentile(baseline["delays"], 99)
    r_rate = args.count / reminders["span"]
    b_rate = args.count / baseline["span"]
    within = sum(1 for d in reminders["delays"] if d <= BUDGET_S) / args.count
    result = {
        "bench": "reminders",
        "count": args.count,
        "workers": f"{args.workers}x solo",
        "patients": min(args.patients, args.count),
        "sweep_batch": SWEEP_BATCH,
        "sweep_runs": reminders["sweep_runs"],
        "sweep_s": round(reminders["sweep_s"], 2),
        "requeued_by_beat": reminders["requeued"],
        "sent": reminders["states"].get("sent", 0),
        "states": reminders["states"],
        "attempts": reminders["attempts"],
        "delivered": delivered,
        "duplicates": delivered - reminders["states"].get("sent", 0),
        "left_in_queue": left_in_queue,
        "reminders_per_s": round(r_rate, 1),
        "reminder_delay_p50_s": round(r50, 3),
        "reminder_delay_p99_s": round(r99, 3),
        "reminder_delay_max_s": round(max(reminders["delays"]), 3),
        "within_budget_share": round(within, 4),
        "baseline_tasks_per_s": round(b_rate, 1),
        "baseline_publish_s": round(baseline["publish_s"], 2),
        "baseline_delay_p50_s": round(b50, 3),
        "baseline_delay_p99_s": round(b99, 3),
        "ratio_rate": round(b_rate / r_rate, 2),
        "ratio_p50": round(r50 / b50, 2) if b50 else None,
        "ratio_p99": round(r99 / b99, 2) if b99 else None,
        "budget_s": BUDGET_S,
        "budget_p99_met": r99 <= BUDGET_S,
        "correct": delivered == args.count
        and reminders["states"] == {"sent": args.count}
        and reminders["attempts"] == args.count,
        "setup_s": round(setup_s, 1),
        # Other work on this machine skews every figure; recorded to compare runs fairly.
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(
        f"reminders: {args.count} due at once, {result['sent']} sent, {delivered} accepted "
        f"by SMTP, {result['reminders_per_s']}/s with {result['workers']} workers; "
        f"{result['sweep_runs']} sweep runs ({result['sweep_s']} s), "
        f"{result['requeued_by_beat']} re-queued by beat"
    )
    print(
        f"           due -> sent p50 {r50:.2f} s, p99 {r99:.2f} s, max "
        f"{result['reminder_delay_max_s']:.2f} s; within {BUDGET_S:.0f} s: {within:.1%}"
    )
    print(
        f"baseline:  {args.count} no-op tasks, {result['baseline_tasks_per_s']}/s; "
        f"publish -> done p50 {b50:.2f} s, p99 {b99:.2f} s"
    )
    print(
        f"ratio: no-op/reminder rate {result['ratio_rate']}x; delay p50 "
        f"{result['ratio_p50']}x, p99 {result['ratio_p99']}x"
    )
    print(
        f"every reminder exactly once: {'yes' if result['correct'] else 'NO'}; budget "
        f"(sent within {BUDGET_S:.0f} s of due) at p99: "
        f"{'met' if result['budget_p99_met'] else 'missed'}"
    )
    print(f"machine load (1 min average): {result['load_avg_1m']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
