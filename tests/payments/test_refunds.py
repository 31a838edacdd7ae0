"""Refunds: automatic on cancellation under the consultation type's policy (full inside
the free window or when the clinic cancels, partial after it, none when the fee is the
whole price), by hand in admin with a reason (partial, never beyond what is left), and
what the patient sees. Against localstripe."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications.models import Event, Message
from payments import workflows
from payments.models import (
    FiscalReceipt,
    Payment,
    PaymentStatus,
    ReceiptKind,
    Refund,
    RefundReason,
    RefundStatus,
)
from scheduling import services as scheduling_services
from scheduling.models import Appointment, AppointmentStatus
from tests import factories
from tests.payments.helpers import make_paid_clinic

GOOD_CARD = "4242424242424242"


@pytest.fixture(autouse=True)
def _english(client, settings):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    settings.FISCAL_PROVIDER = ""


@pytest.fixture
def patient_en(db):
    return factories.make_patient(language="en")


def _paid_booking(
    localstripe, clinic, patient, *, days_ahead: int = 3
) -> tuple[Appointment, Payment]:  # noqa: F811
    held = clinic.hold(patient, days_ahead=days_ahead)
    payment = workflows.checkout_start(by=patient, appointment=held)
    token = localstripe.create_token(GOOD_CARD)["id"]
    workflows.confirm_with_card_token(by=patient, payment=payment, token_id=token)
    payment.refresh_from_db()
    held.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED and held.status == AppointmentStatus.BOOKED
    return held, payment


def _cancel(by, appointment, capture):  # noqa: ANN001
    with capture(execute=True):
        scheduling_services.appointment_cancel(by=by, appointment=appointment, reason="test")


def test_cancelling_inside_the_free_window_refunds_in_full_with_a_refund_receipt(
    db,
    localstripe,
    patient_en,
    celery_eager,
    django_capture_on_commit_callbacks,
    client,  # noqa: F811
):
    clinic = make_paid_clinic()
    appointment, payment = _paid_booking(localstripe, clinic, patient_en, days_ahead=3)
    _cancel(patient_en, appointment, django_capture_on_commit_callbacks)
    refund = Refund.objects.get(payment=payment)
    assert refund.reason == RefundReason.CANCELLATION and refund.amount == Decimal("2500.00")
    assert refund.status == RefundStatus.SUCCEEDED and refund.provider_refund_id.startswith("re_")
    payment.refresh_from_db()
    assert payment.refunded_amount == payment.amount and payment.refundable_amount == 0
    receipts = FiscalReceipt.objects.filter(payment=payment).order_by("kind")
    assert [(r.kind, r.amount) for r in receipts] == [
        (ReceiptKind.SELL, Decimal("2500.00")),
        (ReceiptKind.SELL_REFUND, Decimal("2500.00")),
    ]
    assert receipts[1].refund_id == refund.pk
    assert Message.objects.filter(user=patient_en, event=Event.REFUND_ISSUED).count() == 1
    # The provider agrees: the whole charge is back.
    from payments.gateway import gateway

    assert gateway().retrieve_refund(refund.provider_refund_id).amount_minor == 250000
    # The patient sees it.
    client.force_login(patient_en)
    page = client.get(reverse("payments:history")).content.decode()
    assert "Refunded" in page and "Appointment cancelled" in page
    detail = client.get(reverse("scheduling:appointment_detail", args=[appointment.public_id]))
    assert "Refunds" in detail.content.decode()


def test_cancelling_late_refunds_all_but_the_fee(
    db,
    localstripe,
    patient_en,
    celery_eager,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    clinic = make_paid_clinic()
    appointment, payment = _paid_booking(localstripe, clinic, patient_en, days_ahead=3)
    # Inside the last 24 hours: the policy's 500 fee stays with the clinic.
    start = timezone.now() + timedelta(hours=5)
    Appointment.objects.filter(pk=appointment.pk).update(
        during=(start, start + timedelta(minutes=30))
    )
    appointment.refresh_from_db()
    _cancel(patient_en, appointment, django_capture_on_commit_callbacks)
    refund = Refund.objects.get(payment=payment)
    assert refund.amount == Decimal("2000.00") and refund.status == RefundStatus.SUCCEEDED
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("2000.00")


def test_no_refund_when_the_fee_is_the_whole_price(
    db,
    localstripe,
    patient_en,
    celery_eager,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    clinic = make_paid_clinic(late_cancellation_fee=Decimal("2500.00"))
    appointment, payment = _paid_booking(localstripe, clinic, patient_en)
    start = timezone.now() + timedelta(hours=5)
    Appointment.objects.filter(pk=appointment.pk).update(
        during=(start, start + timedelta(minutes=30))
    )
    appointment.refresh_from_db()
    _cancel(patient_en, appointment, django_capture_on_commit_callbacks)
    assert not Refund.objects.exists()
    assert FiscalReceipt.objects.filter(kind=ReceiptKind.SELL_REFUND).count() == 0


def test_the_clinic_cancelling_refunds_in_full_even_late(
    db,
    localstripe,
    patient_en,
    reception,
    celery_eager,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    clinic = make_paid_clinic()
    appointment, payment = _paid_booking(localstripe, clinic, patient_en)
    start = timezone.now() + timedelta(hours=5)
    Appointment.objects.filter(pk=appointment.pk).update(
        during=(start, start + timedelta(minutes=30))
    )
    appointment.refresh_from_db()
    _cancel(reception, appointment, django_capture_on_commit_callbacks)
    refund = Refund.objects.get(payment=payment)
    assert refund.reason == RefundReason.CLINIC_CANCELLED and refund.amount == Decimal("2500.00")


def test_cancelling_twice_refunds_once(
    db,
    localstripe,
    patient_en,
    celery_eager,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    clinic = make_paid_clinic()
    appointment, payment = _paid_booking(localstripe, clinic, patient_en)
    _cancel(patient_en, appointment, django_capture_on_commit_callbacks)
    _cancel(patient_en, appointment, django_capture_on_commit_callbacks)
    # The refund key is per cancellation: replaying the hook makes nothing new either.
    with django_capture_on_commit_callbacks(execute=True):
        workflows.on_appointment_cancelled(
            appointment_id=appointment.pk, cancellation_fee=Decimal("0"), free=True, by_clinic=False
        )
    assert Refund.objects.filter(payment=payment).count() == 1
    assert FiscalReceipt.objects.filter(payment=payment, kind=ReceiptKind.SELL_REFUND).count() == 1


def test_admin_refunds_part_with_a_reason_and_never_beyond_what_is_left(
    db,
    localstripe,
    patient_en,
    admin_user,
    login_staff,
    client,
    celery_eager,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    clinic = make_paid_clinic()
    appointment, payment = _paid_booking(localstripe, clinic, patient_en)
    login_staff(admin_user)
    url = reverse("admin:payments_payment_refund", args=[payment.pk])
    page = client.get(url)
    assert page.status_code == 200
    # No reason, too much, or nothing: refused with a message, nothing changes.
    assert (
        "This field is required"
        in client.post(url, {"amount": "100", "reason": "admin", "note": ""}).content.decode()
    )
    too_much = client.post(url, {"amount": "9999", "reason": "admin", "note": "a goodwill gesture"})
    assert "can still be refunded" in too_much.content.decode()
    assert not Refund.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            url, {"amount": "1000.00", "reason": "admin", "note": "a goodwill gesture"}
        )
    assert done.status_code == 302
    refund = Refund.objects.get()
    assert refund.amount == Decimal("1000.00") and refund.requested_by == admin_user
    assert refund.status == RefundStatus.SUCCEEDED and refund.note == "a goodwill gesture"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"amount": "1500.00", "reason": "admin", "note": "the rest, by request"})
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("2500.00")
    assert FiscalReceipt.objects.filter(payment=payment, kind=ReceiptKind.SELL_REFUND).count() == 2
    # Cancelling now refunds nothing more: nothing is left.
    _cancel(admin_user, appointment, django_capture_on_commit_callbacks)
    assert Refund.objects.filter(payment=payment).count() == 2


def test_refunds_by_hand_are_for_admins_only(
    db, localstripe, patient_en, reception, login_staff, client
):  # noqa: F811
    clinic = make_paid_clinic()
    _, payment = _paid_booking(localstripe, clinic, patient_en)
    login_staff(reception)
    response = client.post(
        reverse("admin:payments_payment_refund", args=[payment.pk]),
        {"amount": "10", "reason": "admin", "note": "not allowed here"},
    )
    assert response.status_code in (302, 403)  # admin login page or refused
    assert not Refund.objects.exists()


def test_a_refund_the_provider_could_not_take_is_retried_by_the_sweep(
    db,
    localstripe,
    patient_en,
    settings,
    celery_eager,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    clinic = make_paid_clinic()
    appointment, payment = _paid_booking(localstripe, clinic, patient_en)
    good_base = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # the provider is away
    _cancel(patient_en, appointment, django_capture_on_commit_callbacks)
    refund = Refund.objects.get()
    assert refund.status == RefundStatus.PENDING and refund.attempts == 1
    settings.STRIPE_API_BASE = good_base
    Refund.objects.filter(pk=refund.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    from payments.tasks import sweep

    sweep.delay()
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED and refund.attempts == 2
    assert Refund.objects.count() == 1
