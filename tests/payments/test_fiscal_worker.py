"""A fiscal receipt through a real Celery worker process (on the test database, a queue of
its own) and the fake ATOL Online: the worker's claim is committed before it talks to
the operator (seen from another process while the worker waits for the answer), a
timeout after the operator stored the document costs a retry and not a second
document, and the patient's email with the receipt's link reaches a real SMTP server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from clinic.celery import app as celery_app
from notifications.models import Event, Message
from notifications.services import messages_sweep
from payments.models import FiscalReceipt, ReceiptState
from payments.services_fiscal import receipt_create_for_payment, receipt_send
from payments.tasks_fiscal import send_receipt
from tests.notifications.test_reliability import (
    barrier,
    queues,  # noqa: F401 - the fixture
    to_workers,
    wait_until,
    worker_database_url,
)
from tests.payments.test_fiscal_receipts import make_payment

ROOT = Path(__file__).resolve().parents[2]


class FiscalWorker:
    """`celery worker --pool solo` reading only the test's queue, with the fiscal tasks
    included (Celery's autodiscovery reads payments/tasks.py)."""

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
                "--include",
                "payments.tasks_fiscal",
                "--queues",
                queue,
                "--hostname",
                f"fiscal-{uuid.uuid4().hex[:6]}@%h",
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

    def tail(self, lines: int = 40) -> str:
        self._log_file.flush()
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log_file.close()


@pytest.fixture
def fiscal_worker(queues, fake_atol, smtp_server, tmp_path):  # noqa: F811
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DATABASE_URL": worker_database_url(),
        "EMAIL_URL": smtp_server.email_url,
        "PYTHONUNBUFFERED": "1",
        "FISCAL_PROVIDER": "atol",
        "ATOL_BASE_URL": fake_atol.url,
        "ATOL_LOGIN": fake_atol.login,
        "ATOL_PASSWORD": fake_atol.password,
        "ATOL_GROUP_CODE": fake_atol.group_code,
        "ATOL_COMPANY_INN": fake_atol.inn,
        "ATOL_COMPANY_EMAIL": fake_atol.company_email,
        "ATOL_PAYMENT_ADDRESS": "https://portal.clinic.example",
        "ATOL_TIMEOUT_SECONDS": "2",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    worker = FiscalWorker(queue=queues.work, log=tmp_path / "fiscal-worker.log", env=env)
    yield worker
    worker.stop()


def due_now(receipt: FiscalReceipt) -> None:
    """As if the row's next try had come (the worker runs on the real clock)."""
    FiscalReceipt.objects.filter(pk=receipt.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def to_worker(queues, receipt: FiscalReceipt) -> None:  # noqa: F811
    with to_workers(celery_app, queues):
        send_receipt.delay(receipt.pk)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_claims_first_survives_a_timeout_and_the_patient_gets_the_link(
    fake_atol,
    smtp_server,
    queues,  # noqa: F811
    fiscal_worker,
):
    fake_atol.wait_polls = 0
    payment = make_payment()
    receipt = receipt_create_for_payment(payment=payment)  # its own message goes to "parked"
    # The operator stores the document and then keeps the worker waiting past its timeout.
    fake_atol.fail_next(kind="hang_after", path="/sell", seconds=30)
    to_worker(queues, receipt)

    wait_until(
        lambda: fake_atol.documents_for(receipt.external_id),
        what="the worker to send the document",
        on_timeout=fiscal_worker.tail,
    )
    # The worker is waiting for the operator's answer: its claim is already committed.
    claimed = FiscalReceipt.objects.get(pk=receipt.pk)
    assert claimed.state == ReceiptState.PENDING and claimed.attempts == 1
    assert claimed.next_attempt_at > timezone.now() + timedelta(minutes=2)
    # Here (another process) a try does nothing: the receipt is taken.
    assert receipt_send(receipt_id=receipt.pk).attempts == 1

    timed_out = wait_until(
        lambda: (
            FiscalReceipt.objects.filter(pk=receipt.pk, last_error__startswith="timeout")
            .exclude(next_attempt_at__gt=timezone.now() + timedelta(minutes=2))
            .first()
        ),
        what="the worker to record the timeout",
        on_timeout=fiscal_worker.tail,
    )
    assert timed_out.state == ReceiptState.PENDING and timed_out.provider_uuid == ""

    # The next try (after the back-off) is answered with the document already stored.
    due_now(receipt)
    to_worker(queues, receipt)
    (stored,) = fake_atol.documents_for(receipt.external_id)
    waiting = wait_until(
        lambda: FiscalReceipt.objects.filter(pk=receipt.pk, state=ReceiptState.WAITING).first(),
        what="the registration",
        on_timeout=fiscal_worker.tail,
    )
    assert waiting.provider_uuid == stored.uuid

    due_now(receipt)
    to_worker(queues, receipt)
    done = wait_until(
        lambda: FiscalReceipt.objects.filter(pk=receipt.pk, state=ReceiptState.DONE).first(),
        what="the report",
        on_timeout=fiscal_worker.tail,
    )
    assert done.attempts == 3 and done.receipt_url
    assert len(fake_atol.documents) == 1

    # The email was queued in the worker's transaction; the sweep hands it to the worker.
    message = Message.objects.get(event=Event.PAYMENT_RECEIPT, object_id=receipt.pk)
    with to_workers(celery_app, queues):
        assert messages_sweep() == 1
    (received,) = smtp_server.wait_for(1, timeout=30)
    barrier(queues)
    assert received.recipients == (payment.patient.user.email,)
    assert done.receipt_url in received.body
    message.refresh_from_db()
    assert message.state == "sent"
