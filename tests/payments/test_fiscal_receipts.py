"""Fiscal receipts as rows (payments.services_fiscal) against the fake ATOL Online: one
receipt per payment and per refund, sent until the operator confirms, never fiscalised
twice, failed for good only when the operator refuses the document, emailed to the
patient with the receipt's link and nothing medical."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone, translation

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from notifications.models import Event, Message
from notifications.services import message_send
from payments import selectors_fiscal, services_fiscal
from payments.fiscal.atol import AtolOnline
from payments.models import (
    FiscalReceipt,
    Invoice,
    Payment,
    PaymentStatus,
    ReceiptKind,
    ReceiptState,
    Refund,
    RefundReason,
    RefundStatus,
)
from payments.services_fiscal import (
    CLAIM_LEASE,
    QUEUE_LEASE,
    receipt_create_for_payment,
    receipt_create_for_refund,
    receipt_retry,
    receipt_send,
    receipts_sweep,
    retry_delay,
)
from tests import factories

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)

# Words that must never reach the operator or the patient's inbox with a receipt.
SPECIALTY = ("Эндокринолог", "Endocrinologist")
CONSULTATION = ("Подбор инсулинотерапии", "Insulin therapy titration")
DOCTOR_NAME = "Айболитова Вера Павловна"
SERVICE = "Анализ на ВИЧ и гепатит"


# --- Building payments directly (the payment services are tested on their own) ------------


def make_payment(
    patient=None, *, amount: str = "2500.00", description: str = "Консультация"
) -> Payment:
    patient = patient or factories.make_patient()
    invoice = Invoice.objects.create(
        number=f"INV-F-{next(_numbers):05d}",
        patient=patient.patient_profile,
        description=description,
        amount=Decimal(amount),
    )
    return Payment.objects.create(
        patient=patient.patient_profile,
        invoice=invoice,
        amount=Decimal(amount),
        status=PaymentStatus.SUCCEEDED,
        succeeded_at=timezone.now(),
        provider_payment_id=f"pi_fiscal_{next(_numbers)}",
    )


def make_refund(payment: Payment, amount: str = "500.00") -> Refund:
    return Refund.objects.create(
        payment=payment,
        amount=Decimal(amount),
        reason=RefundReason.ADMIN,
        key=f"fiscal-test-{next(_numbers)}",
        status=RefundStatus.SUCCEEDED,
        succeeded_at=timezone.now(),
    )


def make_canary_payment(language: str = "en") -> Payment:
    """A payment for an appointment whose every medical text is a canary."""
    from accounts.models import Specialty
    from scheduling import services as scheduling_services

    specialty = Specialty.objects.create(
        code=f"canary-{next(_numbers)}", name_ru=SPECIALTY[0], name_en=SPECIALTY[1]
    )
    doctor = factories.make_staff(Role.DOCTOR, full_name=DOCTOR_NAME, title="Врач-эндокринолог")
    doctor.staff_profile.specialty = specialty
    doctor.staff_profile.save()
    factories.make_working_week(doctor)
    ctype = factories.make_consultation_type(
        doctor, name_ru=CONSULTATION[0], name_en=CONSULTATION[1], specialty=specialty
    )
    patient = factories.make_patient(language=language)
    from datetime import time
    from zoneinfo import ZoneInfo

    msk = ZoneInfo("Europe/Moscow")
    day = timezone.now().astimezone(msk).date() + timedelta(days=2)
    appointment = scheduling_services.appointment_book_slot(
        by=None,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=datetime.combine(day, time(10, 30), tzinfo=msk),
    )
    invoice = Invoice.objects.create(
        number=f"INV-F-{next(_numbers):05d}",
        patient=patient.patient_profile,
        appointment=appointment,
        description=SERVICE,
        amount=Decimal("3100.00"),
    )
    return Payment.objects.create(
        patient=patient.patient_profile,
        appointment=appointment,
        invoice=invoice,
        doctor=doctor,
        consultation_type=ctype,
        amount=Decimal("3100.00"),
        status=PaymentStatus.SUCCEEDED,
        succeeded_at=timezone.now(),
    )


@pytest.fixture
def published(monkeypatch):
    """Ids of the send tasks published (instead of reaching the broker)."""
    from payments.tasks_fiscal import send_receipt

    sent: list[tuple[int, float | None]] = []
    monkeypatch.setattr(
        send_receipt,
        "apply_async",
        lambda args, countdown=None, **_: sent.append((args[0], countdown)),
    )
    return sent


def later(receipt: FiscalReceipt, seconds: float = 1) -> datetime:
    """A moment just after the receipt's next try is due."""
    receipt.refresh_from_db()
    return receipt.next_attempt_at + timedelta(seconds=seconds)


def send_until_settled(receipt: FiscalReceipt, tries: int = 10) -> FiscalReceipt:
    for _ in range(tries):
        receipt = receipt_send(receipt_id=receipt.pk, now=later(receipt))
        if receipt.state not in (ReceiptState.PENDING, ReceiptState.WAITING):
            return receipt
    return receipt


def audit_states(receipt: FiscalReceipt) -> list[tuple[str, str | None]]:
    return [
        (event.action, event.detail.get("state"))
        for event in AuditEvent.objects.filter(
            object_type="payments.fiscalreceipt", object_id=str(receipt.pk)
        ).order_by("seq")
    ]


# --- Creating receipts --------------------------------------------------------------------


def test_payment_receipt_is_created_once_and_audited(fake_atol, published):
    payment = make_payment(amount="1800.00")
    first = receipt_create_for_payment(payment=payment)
    again = receipt_create_for_payment(payment=payment)
    assert first.pk == again.pk
    assert FiscalReceipt.objects.filter(payment=payment).count() == 1
    assert first.kind == ReceiptKind.SELL and first.amount == Decimal("1800.00")
    assert first.external_id == f"pay-{payment.public_id}"
    assert first.state == ReceiptState.PENDING and first.attempts == 0
    (event,) = AuditEvent.objects.filter(object_type="payments.fiscalreceipt")
    assert event.action == AuditAction.CREATE and event.patient_id == payment.patient.user_id
    assert event.detail["amount"] == "1800.00"


def test_refund_receipt_is_its_own_and_once(fake_atol, published):
    payment = make_payment()
    refund = make_refund(payment, "700.00")
    sale = receipt_create_for_payment(payment=payment)
    first = receipt_create_for_refund(refund=refund)
    again = receipt_create_for_refund(refund=refund)
    assert first.pk == again.pk != sale.pk
    assert first.kind == ReceiptKind.SELL_REFUND and first.amount == Decimal("700.00")
    assert first.payment_id == payment.pk and first.refund_id == refund.pk
    assert first.external_id == f"ref-{refund.public_id}"
    assert list(selectors_fiscal.receipts_for_payment(payment)) == [sale, first]


def test_no_receipt_for_money_that_did_not_arrive(fake_atol):
    payment = make_payment()
    payment.status = PaymentStatus.PROCESSING
    with pytest.raises(ValueError, match="succeeded"):
        receipt_create_for_payment(payment=payment)
    refund = make_refund(make_payment())
    refund.status = RefundStatus.PENDING
    with pytest.raises(ValueError, match="succeeded"):
        receipt_create_for_refund(refund=refund)
    assert not FiscalReceipt.objects.exists()


def test_the_send_is_enqueued_when_the_payment_commits(
    fake_atol, published, django_capture_on_commit_callbacks
):
    payment = make_payment()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        receipt = receipt_create_for_payment(payment=payment)
    assert published == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert published == [(receipt.pk, None)]


def test_payment_commit_to_registration_through_the_task(
    fake_atol, celery_eager, django_capture_on_commit_callbacks
):
    payment = make_payment()
    with django_capture_on_commit_callbacks(execute=True):
        receipt = receipt_create_for_payment(payment=payment)
    receipt.refresh_from_db()
    assert receipt.state == ReceiptState.WAITING
    assert receipt.provider_uuid == fake_atol.documents_for(receipt.external_id)[0].uuid


def test_sending_off_leaves_receipts_pending(settings, fake_atol, published):
    settings.FISCAL_PROVIDER = ""
    receipt = receipt_create_for_payment(payment=make_payment())
    assert receipt_send(receipt_id=receipt.pk).state == ReceiptState.PENDING
    assert receipts_sweep() == 0
    receipt.refresh_from_db()
    assert receipt.attempts == 0 and fake_atol.requests() == [] and published == []


# --- The state machine --------------------------------------------------------------------


def test_pending_then_wait_then_done_stores_requisites_and_emails_the_link(fake_atol, published):
    payment = make_payment(amount="2500.00")
    receipt = receipt_create_for_payment(payment=payment)

    receipt = receipt_send(receipt_id=receipt.pk)
    assert receipt.state == ReceiptState.WAITING and receipt.attempts == 1
    (document,) = fake_atol.documents
    assert receipt.provider_uuid == document.uuid and receipt.provider == "atol"
    assert receipt.last_error == ""

    receipt = receipt_send(receipt_id=receipt.pk, now=later(receipt))
    assert receipt.state == ReceiptState.WAITING and receipt.attempts == 2  # "wait" once

    receipt = receipt_send(receipt_id=receipt.pk, now=later(receipt))
    assert receipt.state == ReceiptState.DONE and receipt.attempts == 3
    payload = fake_atol.documents[0].payload
    assert receipt.fiscal_document_number == str(payload["fiscal_document_number"])
    assert receipt.fiscal_document_attribute == str(payload["fiscal_document_attribute"])
    assert receipt.fiscal_receipt_number == str(payload["fiscal_receipt_number"])
    assert receipt.fn_number == payload["fn_number"]
    assert receipt.receipt_url == payload["ofd_receipt_url"]
    assert receipt.confirmed_at is not None and receipt.registered_at is not None

    (message,) = Message.objects.filter(event=Event.PAYMENT_RECEIPT)
    assert message.user_id == payment.patient.user_id
    assert (message.object_type, message.object_id) == ("fiscal_receipt", receipt.pk)
    assert message.link == receipt.receipt_url
    assert audit_states(receipt) == [
        (AuditAction.CREATE, None),
        (AuditAction.CHANGE, ReceiptState.WAITING),
        (AuditAction.CHANGE, ReceiptState.DONE),
    ]
    # Finished: another try (a late message) changes nothing and calls nobody.
    calls = len(fake_atol.requests())
    again = receipt_send(receipt_id=receipt.pk, now=timezone.now() + timedelta(days=1))
    assert again.state == ReceiptState.DONE and again.attempts == 3
    assert len(fake_atol.requests()) == calls
    assert Message.objects.filter(event=Event.PAYMENT_RECEIPT).count() == 1


def test_the_next_poll_is_enqueued_with_a_countdown_on_commit(
    fake_atol, published, django_capture_on_commit_callbacks
):
    receipt = receipt_create_for_payment(payment=make_payment())
    with django_capture_on_commit_callbacks(execute=True):
        receipt = receipt_send(receipt_id=receipt.pk)
    assert receipt.state == ReceiptState.WAITING
    assert published == [(receipt.pk, services_fiscal.POLL_FIRST.total_seconds())]
    # A retry an hour away is the sweep's, not a countdown's (under the broker's
    # visibility timeout either way).
    published.clear()
    FiscalReceipt.objects.filter(pk=receipt.pk).update(attempts=40)
    fake_atol.fail_next(kind="http500", path="/report/")
    with django_capture_on_commit_callbacks(execute=True):
        receipt = receipt_send(receipt_id=receipt.pk, now=later(receipt))
    assert receipt.last_error.startswith("http-500") and published == []


def test_refund_receipt_goes_as_sell_refund(fake_atol, published):
    payment = make_payment(amount="2500.00")
    receipt = receipt_create_for_refund(refund=make_refund(payment, "500.00"))
    receipt = send_until_settled(receipt)
    assert receipt.state == ReceiptState.DONE
    (document,) = fake_atol.documents
    assert document.operation == "sell_refund" and document.external_id == receipt.external_id
    assert document.body["receipt"]["total"] == 500.0
    assert Message.objects.filter(event=Event.PAYMENT_RECEIPT, object_id=receipt.pk).count() == 1


def test_a_try_that_is_not_due_does_nothing(fake_atol, published):
    receipt = receipt_create_for_payment(payment=make_payment())
    FiscalReceipt.objects.filter(pk=receipt.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    assert receipt_send(receipt_id=receipt.pk).attempts == 0
    assert fake_atol.requests() == []


# --- Temporary errors: back off, never give up --------------------------------------------


def test_backoff_grows_from_30_seconds_to_an_hour():
    delays = [retry_delay(n).total_seconds() for n in range(1, 12)]
    assert delays[:8] == [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert set(delays[7:]) == {3600}
    assert retry_delay(32767) == timedelta(hours=1)


def test_operator_errors_back_off_and_the_receipt_stays_to_send(fake_atol, published):
    receipt = receipt_create_for_payment(payment=make_payment())
    fake_atol.fail_next(3, kind="http500", path="/sell")
    expected = [30, 60, 120]
    for attempt, seconds in enumerate(expected, 1):
        now = later(receipt)
        receipt = receipt_send(receipt_id=receipt.pk, now=now)
        assert receipt.state == ReceiptState.PENDING
        assert receipt.attempts == attempt
        assert receipt.next_attempt_at == now + timedelta(seconds=seconds)
        assert receipt.last_error.startswith("http-500")
    assert fake_atol.documents == []
    receipt = receipt_send(receipt_id=receipt.pk, now=later(receipt))
    assert receipt.state == ReceiptState.WAITING and receipt.last_error == ""
    # Retries are bookkeeping: only creation and registration are in the audit log.
    assert audit_states(receipt) == [
        (AuditAction.CREATE, None),
        (AuditAction.CHANGE, ReceiptState.WAITING),
    ]


def test_never_gives_up_after_many_failures(fake_atol, published):
    receipt = receipt_create_for_payment(payment=make_payment())
    FiscalReceipt.objects.filter(pk=receipt.pk).update(attempts=500)
    fake_atol.stop()
    now = later(receipt)
    receipt = receipt_send(receipt_id=receipt.pk, now=now)
    assert receipt.state == ReceiptState.PENDING and receipt.attempts == 501
    assert receipt.next_attempt_at == now + timedelta(hours=1)
    assert receipt.last_error.startswith("network")
    fake_atol.start()
    assert send_until_settled(receipt).state == ReceiptState.DONE


def test_operator_errors_while_waiting_back_off_too(fake_atol, published):
    receipt = receipt_send(receipt_id=receipt_create_for_payment(payment=make_payment()).pk)
    fake_atol.fail_next(kind="hang", path="/report/", seconds=10)
    now = later(receipt)
    receipt = receipt_send(receipt_id=receipt.pk, now=now)
    assert receipt.state == ReceiptState.WAITING and receipt.last_error.startswith("timeout")
    assert receipt.next_attempt_at == now + retry_delay(receipt.attempts)
    assert send_until_settled(receipt).state == ReceiptState.DONE


def test_expired_token_is_renewed_without_failing_the_receipt(fake_atol, published):
    first = send_until_settled(receipt_create_for_payment(payment=make_payment()))
    fake_atol.expire_tokens()
    second = send_until_settled(receipt_create_for_payment(payment=make_payment()))
    assert (first.state, second.state) == (ReceiptState.DONE, ReceiptState.DONE)
    assert fake_atol.tokens_issued == 2
    assert second.attempts == 3  # register, wait, done: the renewal cost no try


# --- Idempotency by external id -----------------------------------------------------------


def test_sent_twice_is_one_fiscal_document(fake_atol, published):
    receipt = receipt_create_for_payment(payment=make_payment())
    receipt = receipt_send(receipt_id=receipt.pk)
    uuid = receipt.provider_uuid
    # As if the registration had never been recorded: back to pending, sent again.
    FiscalReceipt.objects.filter(pk=receipt.pk).update(state=ReceiptState.PENDING, provider_uuid="")
    receipt = receipt_send(receipt_id=receipt.pk, now=later(receipt))
    assert receipt.state == ReceiptState.WAITING and receipt.provider_uuid == uuid
    assert len(fake_atol.documents_for(receipt.external_id)) == 1
    assert len(fake_atol.requests("/sell", method="POST")) == 2
    assert send_until_settled(receipt).state == ReceiptState.DONE
    assert len(fake_atol.documents) == 1


def test_timeout_after_the_operator_stored_it_is_not_a_second_document(fake_atol, published):
    receipt = receipt_create_for_payment(payment=make_payment())
    fake_atol.fail_next(kind="hang_after", path="/sell", seconds=10)
    receipt = receipt_send(receipt_id=receipt.pk)
    assert receipt.state == ReceiptState.PENDING and receipt.last_error.startswith("timeout")
    (stored,) = fake_atol.documents
    receipt = receipt_send(receipt_id=receipt.pk, now=later(receipt))
    assert receipt.state == ReceiptState.WAITING and receipt.provider_uuid == stored.uuid
    assert send_until_settled(receipt).state == ReceiptState.DONE
    assert len(fake_atol.documents) == 1


class WorkerLost(BaseException):
    """The worker process ends in the middle of a try (nothing after it runs)."""


def test_worker_lost_after_registering_is_recovered_by_the_lease(fake_atol, published, monkeypatch):
    receipt = receipt_create_for_payment(payment=make_payment())
    real_register = AtolOnline.register

    def register_then_die(self, document):
        real_register(self, document)  # the operator has the document...
        raise WorkerLost  # ...and the worker is gone before recording its uuid

    monkeypatch.setattr(AtolOnline, "register", register_then_die)
    started = timezone.now()
    with pytest.raises(WorkerLost):
        receipt_send(receipt_id=receipt.pk, now=started)
    monkeypatch.setattr(AtolOnline, "register", real_register)

    # The claim was committed before the call: the row says a worker holds it.
    receipt.refresh_from_db()
    assert receipt.state == ReceiptState.PENDING and receipt.attempts == 1
    assert receipt.next_attempt_at == started + CLAIM_LEASE
    (stored,) = fake_atol.documents
    # Within the lease nobody takes it: neither the sweep nor a redelivered message.
    assert receipts_sweep(now=started + CLAIM_LEASE - timedelta(seconds=1)) == 0
    assert receipt_send(receipt_id=receipt.pk, now=started + timedelta(seconds=30)).attempts == 1
    # Once it has run out, the sweep queues it and the next try finds the document.
    after = started + CLAIM_LEASE + timedelta(seconds=1)
    assert receipts_sweep(now=after) == 1 and published == [(receipt.pk, None)]
    receipt = receipt_send(receipt_id=receipt.pk, now=after)
    assert receipt.state == ReceiptState.WAITING and receipt.provider_uuid == stored.uuid
    assert receipt.attempts == 2
    assert send_until_settled(receipt).state == ReceiptState.DONE
    assert len(fake_atol.documents) == 1


# --- Refused for good ---------------------------------------------------------------------


def test_a_refused_document_fails_for_a_person_and_is_not_swept(fake_atol, published):
    receipt = receipt_create_for_payment(payment=make_payment())
    fake_atol.reject_documents("Передан некорректный ИНН")
    receipt = receipt_send(receipt_id=receipt.pk)
    assert receipt.state == ReceiptState.FAILED
    assert receipt.last_error.startswith("atol-32") and "ИНН" in receipt.last_error
    assert audit_states(receipt)[-1] == (AuditAction.CHANGE, ReceiptState.FAILED)
    assert receipts_sweep(now=timezone.now() + timedelta(days=1)) == 0
    assert receipt_send(receipt_id=receipt.pk, now=timezone.now() + timedelta(days=1)).attempts == 1
    assert not Message.objects.exists()


def test_fiscalisation_failed_at_the_register_then_a_person_retries_with_a_new_id(
    fake_atol, published, admin_user
):
    fake_atol.wait_polls = 0
    fake_atol.fail_fiscalisation(code=-3804, text="Ошибка ФН")
    receipt = receipt_create_for_payment(payment=make_payment())
    first_id = receipt.external_id
    receipt = send_until_settled(receipt)
    assert receipt.state == ReceiptState.FAILED and "Ошибка ФН" in receipt.last_error

    fake_atol.fail_error = None  # the cash register is fixed
    receipt = receipt_retry(by=admin_user, receipt=receipt)
    assert receipt.state == ReceiptState.PENDING
    # The operator keeps the failed document under the old id: the new one needs its own.
    assert receipt.external_id == f"{first_id}-r2" and receipt.provider_uuid == ""
    retry_event = AuditEvent.objects.filter(
        object_type="payments.fiscalreceipt", object_id=str(receipt.pk), actor=admin_user
    ).get()
    assert retry_event.detail["retry"] is True and retry_event.detail["from"] == "failed"

    receipt = send_until_settled(receipt)
    assert receipt.state == ReceiptState.DONE
    assert [d.status for d in fake_atol.documents] == ["fail", "done"]
    assert Message.objects.filter(event=Event.PAYMENT_RECEIPT).count() == 1


def test_a_refused_document_retried_keeps_its_id(fake_atol, published, admin_user):
    fake_atol.reject_documents()
    receipt = receipt_send(receipt_id=receipt_create_for_payment(payment=make_payment()).pk)
    assert receipt.state == ReceiptState.FAILED
    fake_atol.reject_text = ""
    receipt = receipt_retry(by=admin_user, receipt=receipt)
    assert receipt.external_id.startswith("pay-") and not receipt.external_id.endswith("-r2")
    assert send_until_settled(receipt).state == ReceiptState.DONE


def test_only_administrators_retry(fake_atol, published, reception, doctor):
    fake_atol.reject_documents()
    receipt = receipt_send(receipt_id=receipt_create_for_payment(payment=make_payment()).pk)
    patient = receipt.payment.patient.user
    for user in (reception, doctor, patient):
        with pytest.raises(PermissionDenied):
            receipt_retry(by=user, receipt=receipt)
    receipt.refresh_from_db()
    assert receipt.state == ReceiptState.FAILED


def test_a_done_receipt_is_not_retried(fake_atol, published, admin_user):
    from django.core.exceptions import ValidationError

    receipt = send_until_settled(receipt_create_for_payment(payment=make_payment()))
    with pytest.raises(ValidationError):
        receipt_retry(by=admin_user, receipt=receipt)


# --- The sweep ----------------------------------------------------------------------------


def test_sweep_queues_due_open_receipts_once_per_lease(fake_atol, published):
    now = timezone.now()
    pending = receipt_create_for_payment(payment=make_payment())
    waiting = receipt_send(receipt_id=receipt_create_for_payment(payment=make_payment()).pk)
    not_due = receipt_create_for_payment(payment=make_payment())
    FiscalReceipt.objects.filter(pk=not_due.pk).update(next_attempt_at=now + timedelta(hours=1))
    done = send_until_settled(receipt_create_for_payment(payment=make_payment()))
    fake_atol.reject_documents()
    failed = receipt_send(receipt_id=receipt_create_for_payment(payment=make_payment()).pk)
    assert (done.state, failed.state) == (ReceiptState.DONE, ReceiptState.FAILED)
    published.clear()

    moment = now + timedelta(minutes=1)
    assert receipts_sweep(now=moment) == 2
    assert sorted(pk for pk, _ in published) == sorted([pending.pk, waiting.pk])
    # Queued and not yet taken: the next sweeps leave them to their messages...
    assert receipts_sweep(now=moment) == 0
    # ...a try takes one (and forgets it was queued); the other's message is "lost".
    fake_atol.reject_text = ""
    receipt_send(receipt_id=pending.pk, now=moment)
    assert receipts_sweep(now=moment + timedelta(minutes=1)) == 1  # the pending one, due again
    assert published[-1][0] == pending.pk


def test_sweep_requeues_a_lost_message_after_the_queue_lease(fake_atol, published):
    from django.core.cache import cache

    receipt = receipt_create_for_payment(payment=make_payment())
    assert receipts_sweep() == 1
    assert receipts_sweep() == 0
    # The note that it is queued runs out after QUEUE_LEASE (simulated: it is gone).
    key = cache.make_key(services_fiscal._queued_key(receipt.pk))
    ttl = cache._cache.get_client().ttl(key)
    assert QUEUE_LEASE.total_seconds() - 5 <= ttl <= QUEUE_LEASE.total_seconds()
    cache.delete(services_fiscal._queued_key(receipt.pk))
    assert receipts_sweep() == 1
    assert [pk for pk, _ in published] == [receipt.pk, receipt.pk]


def test_sweep_with_the_broker_down_leaves_rows_for_the_next_sweep(fake_atol, monkeypatch):
    from kombu.exceptions import OperationalError

    from payments.tasks_fiscal import send_receipt

    receipt = receipt_create_for_payment(payment=make_payment())

    def broker_down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(send_receipt, "apply_async", broker_down)
    assert receipts_sweep() == 0
    sent = []
    monkeypatch.setattr(send_receipt, "apply_async", lambda args, **_: sent.append(args[0]))
    assert receipts_sweep() == 1 and sent == [receipt.pk]


# --- No medical content, to the operator or in the email ----------------------------------


def _forbidden(payment: Payment) -> list[str]:
    return [
        *SPECIALTY,
        *CONSULTATION,
        DOCTOR_NAME,
        DOCTOR_NAME.split()[0],
        SERVICE,
        "ВИЧ",
        "эндокринолог",
        "инсулин",
        "insulin",
        payment.patient.last_name,
    ]


def test_the_operator_gets_a_neutral_russian_line_and_the_patients_email(fake_atol, published):
    payment = make_canary_payment(language="en")
    receipt = receipt_send(receipt_id=receipt_create_for_payment(payment=payment).pk)
    assert receipt.state == ReceiptState.WAITING
    (document,) = fake_atol.documents
    body = document.body
    with translation.override("ru"):
        neutral = str(services_fiscal.RECEIPT_ITEM_NAME)
    assert [item["name"] for item in body["receipt"]["items"]] == [neutral]
    assert neutral.strip()
    assert body["receipt"]["client"] == {"email": payment.patient.user.email}
    assert body["receipt"]["total"] == 3100.0
    text = json.dumps(body, ensure_ascii=False).casefold()
    leaked = [word for word in _forbidden(payment) if word.casefold() in text]
    assert leaked == []


@pytest.mark.parametrize("language", ["ru", "en"])
def test_the_email_carries_the_receipt_link_and_nothing_medical(
    fake_atol, published, smtp_server, language
):
    payment = make_canary_payment(language=language)
    receipt = send_until_settled(receipt_create_for_payment(payment=payment))
    assert receipt.state == ReceiptState.DONE
    (message,) = Message.objects.filter(event=Event.PAYMENT_RECEIPT)
    assert message_send(message_id=message.pk) == "sent"
    (received,) = smtp_server.wait_for(1, timeout=10)
    assert received.recipients == (payment.patient.user.email,)
    assert receipt.receipt_url in received.body
    assert receipt.receipt_url.startswith("https://receipts.ofd.example/rec/")
    text = received.text.casefold()
    leaked = [word for word in _forbidden(payment) if word.casefold() in text]
    assert leaked == [], received.text
    assert "3100" not in received.text  # not even the amount: the link shows the receipt


def test_without_a_link_no_email_is_queued(fake_atol, published, monkeypatch):
    fake_atol.wait_polls = 0
    original = fake_atol._fiscalise

    def without_link(document):
        original(document)
        document.payload.pop("ofd_receipt_url")

    monkeypatch.setattr(fake_atol, "_fiscalise", without_link)
    receipt = send_until_settled(receipt_create_for_payment(payment=make_payment()))
    assert receipt.state == ReceiptState.DONE and receipt.receipt_url == ""
    assert receipt.fiscal_document_number
    assert not Message.objects.exists()
