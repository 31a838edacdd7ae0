"""Stripe's webhook endpoint (payments/webhooks.py) with localstripe as Stripe.

The attacker's side first: forged or re-signed bodies, stale and future timestamps,
malformed bodies — each answered 400 and changing nothing. Then exactly-once: a
redelivered event is counted, not processed again; unknown types are recorded and
ignored; Stripe being away rolls everything back and asks for redelivery (503). Then
the real thing: localstripe delivering to a live server, and every event of a paid
booking, a cancellation refund, a partial admin refund, a payment nobody came back from
and a declined card replayed three times in random order, ending where one ordered
delivery ends, with one fiscal receipt per payment and per refund.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from payments import services, workflows
from payments.gateway import CardDeclined, WebhookRejected, gateway
from payments.models import (
    FiscalReceipt,
    Payment,
    PaymentStatus,
    ReceiptKind,
    Refund,
    RefundReason,
    RefundStatus,
    WebhookEvent,
    WebhookOutcome,
)
from payments.money import to_minor
from scheduling import services as scheduling_services
from scheduling.models import Appointment, AppointmentStatus
from tests import factories
from tests.payments.helpers import make_paid_clinic
from tests.payments.localstripe import WEBHOOK_SECRET

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # localstripe declines it when charged


def _url() -> str:
    return reverse("payments:stripe_webhook")


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def deliver(client: Client, payload: bytes, header: str | None = None):  # noqa: ANN201
    extra = {"HTTP_STRIPE_SIGNATURE": sign(payload) if header is None else header}
    return client.post(_url(), data=payload, content_type="application/json", **extra)


def event_payload(event: dict) -> bytes:
    return json.dumps(event, sort_keys=True).encode()


def synthetic_event(event_type: str, obj: dict, *, event_id: str | None = None) -> bytes:
    return event_payload(
        {
            "id": event_id or f"evt_test_{random.randrange(10**12)}",
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "livemode": False,
            "api_version": "2017-08-15",
            "data": {"object": obj},
        }
    )


@pytest.fixture(autouse=True)
def _quiet(settings):
    settings.FISCAL_PROVIDER = ""  # receipts are created and wait; their tests send them


@pytest.fixture
def paid_clinic(db):
    return make_paid_clinic()


@pytest.fixture
def patient_en(db):
    return factories.make_patient(language="en")


def _checkout(paid_clinic, patient, *, index: int = 0, days_ahead: int = 3) -> Payment:
    held = paid_clinic.hold(patient, index=index, days_ahead=days_ahead)
    payment = workflows.checkout_start(by=patient, appointment=held)
    assert payment.provider_payment_id.startswith("pi_")
    return payment


def _pay_at_stripe(localstripe, payment: Payment, card: str = GOOD_CARD) -> None:
    """What the browser does with Stripe.js: the intent is paid at Stripe and the portal
    has not heard of it yet."""
    token = localstripe.create_token(card)["id"]
    gateway().confirm_with_card_token(payment.provider_payment_id, token)


def _succeeded_event(localstripe, payment: Payment) -> dict:
    (event,) = [
        e
        for e in localstripe.events(types=("payment_intent.succeeded",))
        if e["data"]["object"]["id"] == payment.provider_payment_id
    ]
    return event


# --- signature and time: the attacker's side ---------------------------------------------------


@pytest.fixture
def genuine(localstripe, paid_clinic, patient_en):
    """A payment paid at Stripe, and the event Stripe made for it (not yet delivered)."""
    payment = _checkout(paid_clinic, patient_en)
    _pay_at_stripe(localstripe, payment)
    return payment, event_payload(_succeeded_event(localstripe, payment))


def _assert_nothing_changed(payment: Payment) -> None:
    assert not WebhookEvent.objects.exists()
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING and payment.succeeded_at is None
    assert not FiscalReceipt.objects.exists()


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body: (body, sign(body, secret="whsec_attacker")), id="wrong-secret"),
        pytest.param(
            lambda body: (body, f"t={int(time.time())},v1={'0' * 64}"), id="forged-signature"
        ),
        pytest.param(
            lambda body: (body.replace(b'"livemode": false', b'"livemode": true'), sign(body)),
            id="body-changed-after-signing",
        ),
        pytest.param(
            lambda body: (body, sign(body, at=int(time.time()) - 301)), id="stale-5min-old"
        ),
        pytest.param(
            lambda body: (body, sign(body, at=int(time.time()) + 301)), id="future-5min-ahead"
        ),
        pytest.param(lambda body: (body, sign(body).replace("v1=", "v0=")), id="no-v1-scheme"),
        pytest.param(lambda body: (body, "t=abc,v1=00"), id="garbage-header"),
        pytest.param(lambda body: (body, ""), id="no-header"),
    ],
)
def test_a_delivery_that_is_not_genuine_and_recent_changes_nothing(client, genuine, forge, caplog):
    payment, body = genuine
    sent, header = forge(body)
    with caplog.at_level(logging.WARNING, logger="payments.webhooks"):
        response = deliver(client, sent, header)
    assert response.status_code == 400
    _assert_nothing_changed(payment)
    # Logged as rejected, without the body (it names our payment).
    assert "stripe webhook rejected" in caplog.text
    assert payment.provider_payment_id not in caplog.text
    assert str(payment.public_id) not in caplog.text
    # The very same body, genuinely signed, is accepted: the refusals above were real.
    assert deliver(client, body).status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("skew", "accepted"), [(-300, True), (300, True), (-301, False), (301, False)]
)
def test_the_tolerance_is_five_minutes_in_both_directions(settings, skew, accepted):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    body = synthetic_event("ping", {"id": "x"})
    now = 1_800_000_000
    header = sign(body, at=now + skew)
    if accepted:
        assert gateway().verify_webhook(body, header, now=now).id.startswith("evt_test_")
    else:
        with pytest.raises(WebhookRejected, match="tolerance"):
            gateway().verify_webhook(body, header, now=now)


def test_no_configured_secret_rejects_everything(client, settings, db):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = synthetic_event("payment_intent.succeeded", {"id": "pi_x"})
    assert deliver(client, body, sign(body, secret="")).status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        b'{"id": "evt_1", "type": "payment_intent.succeeded"}',
        b'{"id": "", "type": "x", "data": {"object": {}}}',
        b'{"id": "evt_1", "type": "x", "data": {"object": "pi_1"}}',
        '{"id": "evt_\u00e9", "type": 5, "data": {"object": {}}}'.encode(),
    ],
)
def test_a_genuinely_signed_body_that_is_not_an_event_is_400(client, localstripe, db, body):
    response = deliver(client, body)
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_only_post_and_no_csrf_token_needed(localstripe, db):
    client = Client(enforce_csrf_checks=True)
    assert client.get(_url()).status_code == 405
    body = synthetic_event("customer.created", {"id": "cus_1"})
    assert deliver(client, body).status_code == 200


# --- exactly once ---------------------------------------------------------------------------------


def test_a_genuine_event_is_processed_once_and_redeliveries_are_counted(
    client, genuine, monkeypatch
):
    payment, body = genuine
    calls = []
    real_sync = workflows.payment_intent_sync

    def spy(*, intent_id):  # noqa: ANN001, ANN202
        calls.append(intent_id)
        return real_sync(intent_id=intent_id)

    monkeypatch.setattr(workflows, "payment_intent_sync", spy)
    first = deliver(client, body)
    assert first.status_code == 200 and first.json()["outcome"] == WebhookOutcome.PROCESSED
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    event = json.loads(body)
    row = WebhookEvent.objects.get()
    assert (row.provider, row.event_id, row.type) == (
        "stripe",
        event["id"],
        "payment_intent.succeeded",
    )
    assert row.object_id == payment.provider_payment_id and row.livemode is False
    assert int(row.created_at_provider.timestamp()) == event["created"]
    assert row.outcome == WebhookOutcome.PROCESSED and row.deliveries == 1

    again = deliver(client, body)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    row.refresh_from_db()
    assert row.deliveries == 2 and WebhookEvent.objects.count() == 1
    assert calls == [payment.provider_payment_id]
    assert FiscalReceipt.objects.filter(payment=payment, kind=ReceiptKind.SELL).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_at_the_same_moment_are_processed_once(localstripe, monkeypatch):
    import threading

    clinic = make_paid_clinic()
    patient = factories.make_patient(language="en")
    payment = _checkout(clinic, patient)
    _pay_at_stripe(localstripe, payment)
    body = event_payload(_succeeded_event(localstripe, payment))
    calls = []
    real_sync = workflows.payment_intent_sync

    def slow_sync(*, intent_id):  # noqa: ANN001, ANN202
        calls.append(intent_id)
        time.sleep(0.5)  # the second delivery arrives while the first is working
        return real_sync(intent_id=intent_id)

    monkeypatch.setattr(workflows, "payment_intent_sync", slow_sync)
    start = threading.Barrier(2)
    answers = []

    def deliver_in_thread() -> None:
        from django.db import connection

        try:
            start.wait()
            answers.append(deliver(Client(), body).json()["outcome"])
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver_in_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == sorted([WebhookOutcome.PROCESSED, "duplicate"])
    assert len(calls) == 1
    row = WebhookEvent.objects.get()
    assert row.deliveries == 2 and row.outcome == WebhookOutcome.PROCESSED
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert FiscalReceipt.objects.filter(payment=payment).count() == 1


def test_an_unknown_type_is_recorded_and_ignored(client, localstripe, db, monkeypatch):
    monkeypatch.setattr(workflows, "payment_intent_sync", lambda **_: pytest.fail("called"))
    body = synthetic_event("customer.subscription.created", {"id": "sub_1"})
    response = deliver(client, body)
    assert response.status_code == 200 and response.json()["outcome"] == WebhookOutcome.IGNORED
    row = WebhookEvent.objects.get()
    assert row.type == "customer.subscription.created" and row.object_id == "sub_1"
    assert row.outcome == WebhookOutcome.IGNORED


def test_an_intent_that_is_not_ours_is_no_match(client, localstripe, db):
    foreign = gateway().create_payment_intent(
        amount_minor=1000,
        currency="RUB",
        metadata={},
        idempotency_key="someone-else",
        description="x",
    )
    for event_type in ("payment_intent.succeeded", "refund.updated"):
        body = synthetic_event(event_type, {"id": foreign.id})
        assert deliver(client, body).json()["outcome"] == WebhookOutcome.NO_MATCH
    # A refund id Stripe does not know (another account): not ours either.
    body = synthetic_event("refund.created", {"id": "re_unknown"})
    assert deliver(client, body).json()["outcome"] == WebhookOutcome.NO_MATCH
    assert set(WebhookEvent.objects.values_list("outcome", flat=True)) == {WebhookOutcome.NO_MATCH}
    assert not Payment.objects.exists()


def test_the_body_is_never_trusted_the_intent_is_read_from_stripe(
    client, localstripe, paid_clinic, patient_en
):
    payment = _checkout(paid_clinic, patient_en)  # not paid at Stripe
    claim = synthetic_event(
        "payment_intent.succeeded",
        {"id": payment.provider_payment_id, "object": "payment_intent", "status": "succeeded"},
    )
    assert deliver(client, claim).json()["outcome"] == WebhookOutcome.PROCESSED
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING and not FiscalReceipt.objects.exists()
    assert payment.appointment.status == AppointmentStatus.HELD


def test_stripe_away_rolls_back_and_asks_for_redelivery(client, genuine, settings):
    payment, body = genuine
    live_base = settings.STRIPE_API_BASE
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{closed}"
    response = deliver(client, body)
    assert response.status_code == 503
    _assert_nothing_changed(payment)
    # Stripe redelivers once we can reach it again: processed, as if the first never came.
    settings.STRIPE_API_BASE = live_base
    response = deliver(client, body)
    assert response.status_code == 200 and response.json()["outcome"] == WebhookOutcome.PROCESSED
    row = WebhookEvent.objects.get()
    assert row.deliveries == 1
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED


def test_a_refund_whose_answer_was_lost_is_found_by_its_metadata(
    client, localstripe, paid_clinic, patient_en, admin_user
):
    payment = _checkout(paid_clinic, patient_en)
    _pay_at_stripe(localstripe, payment)
    workflows.payment_intent_sync(intent_id=payment.provider_payment_id)
    refund = services.refund_create(
        by=admin_user, payment=payment, amount=Decimal("400.00"), reason=RefundReason.ADMIN
    )
    provider = _refund_at_stripe_answer_lost(refund)
    events = localstripe.events(types=("charge.refunded", "refund.created"))
    assert [e["type"] for e in events] == ["refund.created", "charge.refunded"]
    # charge.refunded first: the charge's refunds are listed and each is synced.
    charge_refunded = next(e for e in events if e["type"] == "charge.refunded")
    assert deliver(client, event_payload(charge_refunded)).json()["outcome"] == "processed"
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED and refund.provider_refund_id == provider
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("400.00")
    refund_created = next(e for e in events if e["type"] == "refund.created")
    assert deliver(client, event_payload(refund_created)).json()["outcome"] == "processed"
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("400.00")
    assert FiscalReceipt.objects.filter(refund=refund, kind=ReceiptKind.SELL_REFUND).count() == 1


def _refund_at_stripe_answer_lost(refund: Refund) -> str:
    """What `refund_send` asks of Stripe, with the answer lost on the way back (a timeout
    after Stripe made the refund): our row stays pending, without the provider's id."""
    payment = refund.payment
    info = gateway().create_refund(
        payment_intent_id=payment.provider_payment_id,
        amount_minor=to_minor(refund.amount, payment.currency),
        idempotency_key=f"refund-{refund.public_id}",
        metadata={"refund": str(refund.public_id), "payment": str(payment.public_id)},
    )
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING and not refund.provider_refund_id
    return info.id


# --- localstripe delivering to a live server -----------------------------------------------------


def _wait_for(predicate, timeout: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for localstripe's deliveries")


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_signed_events_to_the_endpoint(live_server, localstripe, settings):
    settings.FISCAL_PROVIDER = ""
    clinic = make_paid_clinic()
    patient = factories.make_patient(language="en")
    endpoint = live_server.url.replace("localhost", "127.0.0.1") + _url()
    localstripe.register_webhook(endpoint)

    payment = _checkout(clinic, patient)
    _pay_at_stripe(localstripe, payment)
    _wait_for(
        lambda: (
            WebhookEvent.objects.filter(
                type__in=["payment_intent.created", "payment_intent.succeeded"]
            ).count()
            == 2
        )
    )
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.appointment.status == AppointmentStatus.BOOKED
    outcomes = dict(WebhookEvent.objects.values_list("type", "outcome"))
    assert outcomes == {
        "payment_intent.created": WebhookOutcome.IGNORED,
        "payment_intent.succeeded": WebhookOutcome.PROCESSED,
    }

    # A partial refund sent by the portal: Stripe's refund events arrive after it is
    # already recorded, and change nothing more.
    admin = factories.make_staff("admin", language="en")
    admin.is_superuser = True
    admin.save(update_fields=["is_superuser"])
    refund = services.refund_create(
        by=admin, payment=payment, amount=Decimal("300.00"), reason=RefundReason.ADMIN
    )
    services.refund_send(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    _wait_for(lambda: WebhookEvent.objects.count() == 4)
    assert set(WebhookEvent.objects.values_list("type", "outcome")) >= {
        ("refund.created", WebhookOutcome.PROCESSED),
        ("charge.refunded", WebhookOutcome.PROCESSED),
    }
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("300.00")
    assert FiscalReceipt.objects.filter(kind=ReceiptKind.SELL, payment=payment).count() == 1
    assert FiscalReceipt.objects.filter(kind=ReceiptKind.SELL_REFUND, refund=refund).count() == 1


# --- replay: any order, any number of times --------------------------------------------------


def _snapshot(labels: dict[str, Payment], refunds: dict[str, Refund]) -> dict:
    state: dict = {"payments": {}, "refunds": {}, "events": {}, "deliveries": Counter()}
    for label, payment in labels.items():
        payment.refresh_from_db()
        appointment = Appointment.objects.get(pk=payment.appointment_id)
        state["payments"][label] = (
            payment.status,
            payment.provider_status,
            payment.refunded_amount,
            payment.succeeded_at is not None,
            appointment.status,
            sorted(FiscalReceipt.objects.filter(payment=payment).values_list("kind", "amount")),
        )
    for label, refund in refunds.items():
        refund.refresh_from_db()
        state["refunds"][label] = (
            refund.status,
            refund.amount,
            bool(refund.provider_refund_id),
            FiscalReceipt.objects.filter(refund=refund, kind=ReceiptKind.SELL_REFUND).count(),
        )
    for row in WebhookEvent.objects.all():
        state["events"][row.event_id] = (row.type, row.object_id, row.outcome)
        state["deliveries"][row.deliveries] += 1
    return state


def test_every_event_replayed_three_times_in_random_order_ends_like_one_ordered_delivery(
    client, localstripe, paid_clinic, patient_en, admin_user
):
    seed = int(os.environ.get("WEBHOOK_REPLAY_SEED") or random.SystemRandom().randrange(2**32))
    print(f"webhook replay seed: {seed} (WEBHOOK_REPLAY_SEED={seed} to repeat)")  # noqa: T201

    # 1. Paid, the patient came back to the portal (it synced), then cancelled in the free
    #    window: a full refund, whose answer from Stripe was lost.
    p1 = _checkout(paid_clinic, patient_en, index=0)
    _pay_at_stripe(localstripe, p1)
    workflows.payment_intent_sync(intent_id=p1.provider_payment_id)
    scheduling_services.appointment_cancel(
        by=patient_en, appointment=Appointment.objects.get(pk=p1.appointment_id)
    )
    r1 = Refund.objects.get(payment=p1)
    assert r1.reason == RefundReason.CANCELLATION and r1.amount == p1.amount
    _refund_at_stripe_answer_lost(r1)
    # 2. Paid and synced; the clinic refunds part of it (answer lost too).
    p2 = _checkout(paid_clinic, patient_en, index=1)
    _pay_at_stripe(localstripe, p2)
    workflows.payment_intent_sync(intent_id=p2.provider_payment_id)
    r2 = services.refund_create(
        by=admin_user,
        payment=p2,
        amount=Decimal("700.00"),
        reason=RefundReason.ADMIN,
        note="goodwill",
    )
    _refund_at_stripe_answer_lost(r2)
    # 3. Paid, and the patient never came back: only the webhooks tell the portal.
    p3 = _checkout(paid_clinic, patient_en, index=2)
    _pay_at_stripe(localstripe, p3)
    # 4. Declined at Stripe: only the webhooks tell the portal.
    p4 = _checkout(paid_clinic, patient_en, index=3)
    with pytest.raises(CardDeclined):
        _pay_at_stripe(localstripe, p4, DECLINED_CARD)

    events = localstripe.events()
    types = Counter(e["type"] for e in events)
    assert types == {
        "payment_intent.created": 4,
        "payment_intent.succeeded": 3,
        "payment_intent.payment_failed": 1,
        "refund.created": 2,
        "charge.refunded": 2,
    }, types
    payments = {"p1": p1, "p2": p2, "p3": p3, "p4": p4}
    refunds = {"r1": r1, "r2": r2}
    before = _snapshot(payments, refunds)
    assert before["payments"]["p3"][0] == PaymentStatus.PENDING
    assert before["refunds"]["r1"][0] == RefundStatus.PENDING

    # One ordered delivery, inside a savepoint we roll back afterwards.
    savepoint = transaction.savepoint()
    for event in events:
        assert deliver(client, event_payload(event)).status_code == 200
    ordered = _snapshot(payments, refunds)
    transaction.savepoint_rollback(savepoint)
    assert _snapshot(payments, refunds) == before

    # Each event three times, shuffled.
    deliveries = [event for event in events for _ in range(3)]
    random.Random(seed).shuffle(deliveries)
    for event in deliveries:
        response = deliver(client, event_payload(event))
        assert response.status_code == 200, f"seed {seed}: {response.status_code}"
    replayed = _snapshot(payments, refunds)

    assert ordered["deliveries"] == {1: len(events)}, f"seed {seed}"
    assert replayed["deliveries"] == {3: len(events)}, f"seed {seed}"
    for part in ("payments", "refunds", "events"):
        assert replayed[part] == ordered[part], f"seed {seed}: {part} differ"

    # Where it ends: what Stripe says, each receipt once.
    state = replayed["payments"]
    assert state["p1"][0] == PaymentStatus.SUCCEEDED and state["p1"][2] == p1.amount
    assert state["p2"][2] == Decimal("700.00")
    assert state["p3"][0] == PaymentStatus.SUCCEEDED and state["p3"][4] == AppointmentStatus.BOOKED
    assert state["p4"][0] == PaymentStatus.FAILED and state["p4"][4] != AppointmentStatus.BOOKED
    assert all(r[0] == RefundStatus.SUCCEEDED and r[2] for r in replayed["refunds"].values())
    sells = Counter(
        FiscalReceipt.objects.filter(kind=ReceiptKind.SELL).values_list("payment_id", flat=True)
    )
    assert sells == {p1.pk: 1, p2.pk: 1, p3.pk: 1}
    refund_receipts = Counter(
        FiscalReceipt.objects.filter(kind=ReceiptKind.SELL_REFUND).values_list(
            "refund_id", flat=True
        )
    )
    assert refund_receipts == {r1.pk: 1, r2.pk: 1}
    assert Refund.objects.count() == 2  # no refund made twice
