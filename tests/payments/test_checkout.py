"""Prepayment of a held booking against localstripe: paid → booked with a sale receipt;
declined → hold released; paid after the hold ended → refunded in full and the patient
told; insurance instead of a card; invoices after a visit; the attacker's side."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from notifications.models import Event, Message
from payments import services, workflows
from payments.models import (
    FiscalReceipt,
    InsuranceCoverage,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    ReceiptKind,
    Refund,
    RefundReason,
    RefundStatus,
)
from scheduling.models import Appointment, AppointmentStatus
from tests import factories
from tests.payments.helpers import make_paid_clinic

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # attaches, then the charge is declined


@pytest.fixture(autouse=True)
def _english(client, settings):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    settings.FISCAL_PROVIDER = ""  # receipts stay pending: the fiscal tests send them


@pytest.fixture
def paid_clinic(db):
    return make_paid_clinic()


@pytest.fixture
def patient_en(db):
    return factories.make_patient(language="en")


def _checkout(client, appointment) -> Payment:
    response = client.get(reverse("payments:checkout", args=[appointment.public_id]))
    assert response.status_code == 200, response.content[:300]
    payment = Payment.objects.get(appointment=appointment)
    page = response.content.decode()
    # The page carries what Stripe.js needs and nothing of the card.
    assert 'id="checkout-form"' in page and 'data-client-secret="pi_' in page
    assert reverse("payments:confirm_card", args=[payment.public_id]) in page
    return payment


def _pay(client, localstripe, payment: Payment, card: str = GOOD_CARD):  # noqa: F811
    token = localstripe.create_token(card)["id"]
    return client.post(reverse("payments:confirm_card", args=[payment.public_id]), {"token": token})


def test_paying_a_held_slot_books_it_with_one_sale_receipt(
    client,
    localstripe,
    paid_clinic,
    patient_en,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    held = paid_clinic.hold(patient_en)
    client.force_login(patient_en)
    # Scheduling's payment step hands over to the checkout.
    handover = client.get(reverse("scheduling:appointment_payment", args=[held.public_id]))
    assert handover["Location"] == reverse("payments:checkout", args=[held.public_id])
    payment = _checkout(client, held)
    assert payment.status == PaymentStatus.PENDING and payment.provider_payment_id.startswith("pi_")
    assert payment.amount == Decimal("2500.00") and payment.doctor_id == paid_clinic.doctor.pk
    # A second visit (another tab) reuses the same payment and intent.
    _checkout(client, held)
    assert Payment.objects.filter(appointment=held).count() == 1

    response = _pay(client, localstripe, payment)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "succeeded"
    payment.refresh_from_db()
    held.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED and payment.succeeded_at is not None
    assert held.status == AppointmentStatus.BOOKED and held.hold_expires_at is None
    receipts = FiscalReceipt.objects.filter(payment=payment)
    assert [(r.kind, r.amount) for r in receipts] == [(ReceiptKind.SELL, Decimal("2500.00"))]

    # The return page shows the booking; syncing again changes nothing.
    page = client.get(reverse("payments:payment_detail", args=[payment.public_id]))
    assert "Paid. Your appointment is booked." in page.content.decode()
    workflows.payment_intent_sync(intent_id=payment.provider_payment_id)
    assert FiscalReceipt.objects.filter(payment=payment).count() == 1
    # Paying again is refused by the intent's state: nothing is charged twice.
    again = _pay(client, localstripe, payment)
    assert again.status_code == 200 and again.json()["status"] == "succeeded"
    assert Payment.objects.filter(appointment=held, status=PaymentStatus.SUCCEEDED).count() == 1


def test_a_declined_card_releases_the_hold_and_says_so(
    client,
    localstripe,
    paid_clinic,
    patient_en,  # noqa: F811
):
    held = paid_clinic.hold(patient_en)
    client.force_login(patient_en)
    payment = _checkout(client, held)
    response = _pay(client, localstripe, payment, DECLINED_CARD)
    assert response.status_code == 402
    assert "declined" in response.json()["error"].lower() or "could not" in response.json()["error"]
    payment.refresh_from_db()
    held.refresh_from_db()
    assert payment.status == PaymentStatus.FAILED
    assert held.status == AppointmentStatus.EXPIRED  # the time is free for others again
    assert not FiscalReceipt.objects.exists()
    page = client.get(reverse("payments:payment_detail", args=[payment.public_id])).content.decode()
    assert "The payment did not go through. Nothing was charged." in page


def test_a_payment_after_the_hold_ended_is_refunded_in_full_and_the_patient_told(
    client,
    localstripe,
    paid_clinic,
    patient_en,
    celery_eager,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    held = paid_clinic.hold(patient_en)
    client.force_login(patient_en)
    payment = _checkout(client, held)
    # The hold runs out while the patient is on the bank's page.
    Appointment.objects.filter(pk=held.pk).update(
        hold_expires_at=timezone.now() - timedelta(seconds=1)
    )
    token = localstripe.create_token(GOOD_CARD)["id"]
    # The card goes through at Stripe (the browser confirmed it directly).
    from payments.gateway import gateway

    with django_capture_on_commit_callbacks(execute=True):
        gateway().confirm_with_card_token(payment.provider_payment_id, token)
        workflows.payment_intent_sync(intent_id=payment.provider_payment_id)
    payment.refresh_from_db()
    held.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert held.status == AppointmentStatus.EXPIRED
    refund = Refund.objects.get(payment=payment)
    assert refund.reason == RefundReason.HOLD_EXPIRED and refund.amount == payment.amount
    assert refund.status == RefundStatus.SUCCEEDED and refund.provider_refund_id.startswith("re_")
    payment.refresh_from_db()
    assert payment.refunded_amount == payment.amount
    kinds = sorted(FiscalReceipt.objects.filter(payment=payment).values_list("kind", flat=True))
    assert kinds == [ReceiptKind.SELL, ReceiptKind.SELL_REFUND]
    told = Message.objects.filter(user=patient_en, event=Event.PAYMENT_TOO_LATE)
    assert told.count() == 1
    # A second sync (a late webhook) refunds nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        workflows.payment_intent_sync(intent_id=payment.provider_payment_id)
    assert Refund.objects.filter(payment=payment).count() == 1
    page = client.get(reverse("payments:payment_detail", args=[payment.public_id])).content.decode()
    assert "the booking was not made" in page


def test_insurance_books_without_a_charge_and_reception_sees_the_policy(
    client, paid_clinic, patient_en, reception, login_staff
):
    held = paid_clinic.hold(patient_en)
    client.force_login(patient_en)
    url = reverse("payments:insurance", args=[held.public_id])
    bad = client.post(url, {"kind": "dms", "insurer": "", "policy_number": "1"})
    assert bad.status_code == 400
    assert (
        "Enter the insurance company" in bad.content.decode() or "required" in bad.content.decode()
    )
    held.refresh_from_db()
    assert held.status == AppointmentStatus.HELD and not InsuranceCoverage.objects.exists()
    ok = client.post(url, {"kind": "dms", "insurer": "Sogaz", "policy_number": "7700 1234 5678"})
    assert ok.status_code == 302
    held.refresh_from_db()
    assert held.status == AppointmentStatus.BOOKED
    coverage = InsuranceCoverage.objects.get(appointment=held)
    assert coverage.policy_number == "770012345678" and coverage.checked_at is None
    assert not Payment.objects.exists()
    client.logout()
    login_staff(reception)
    page = client.get(
        reverse("scheduling:staff_appointment", args=[held.public_id])
    ).content.decode()
    assert "Sogaz" in page and "770012345678" in page and "Policy not checked yet" in page
    client.post(reverse("payments:insurance_checked", args=[held.public_id]))
    coverage.refresh_from_db()
    assert coverage.checked_at is not None


def test_an_invoice_after_the_visit_is_paid_through_the_same_checkout(
    client,
    localstripe,
    paid_clinic,
    patient_en,
    reception,
    login_staff,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    held = paid_clinic.hold(patient_en)
    from scheduling import services as scheduling_services

    scheduling_services.appointment_book(by=None, appointment=held)
    login_staff(reception)
    url = reverse("payments:invoice_new", args=[held.public_id])
    assert client.post(url, {"description": "", "amount": "-5"}).status_code == 400
    assert not Invoice.objects.exists()
    response = client.post(url, {"description": "Blood sample", "amount": "700.00"})
    assert response.status_code == 302
    invoice = Invoice.objects.get()
    assert invoice.status == InvoiceStatus.OPEN and invoice.issued_by == reception
    assert Message.objects.filter(user=patient_en, event=Event.INVOICE_ISSUED).count() == 1
    client.logout()
    client.force_login(patient_en)
    listing = client.get(reverse("payments:invoices")).content.decode()
    assert invoice.number in listing
    page = client.get(reverse("payments:invoice_pay", args=[invoice.public_id]))
    assert page.status_code == 200 and "Blood sample" in page.content.decode()
    payment = Payment.objects.get(invoice=invoice)
    assert _pay(client, localstripe, payment).json()["status"] == "succeeded"
    invoice.refresh_from_db()
    payment.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and payment.status == PaymentStatus.SUCCEEDED
    assert FiscalReceipt.objects.filter(payment=payment, kind=ReceiptKind.SELL).count() == 1
    # Paid invoices cannot be paid again.
    again = client.get(reverse("payments:invoice_pay", args=[invoice.public_id]))
    assert again.status_code == 302


def test_another_patients_checkout_payment_and_invoice_are_404_and_recorded(
    client,
    localstripe,
    paid_clinic,
    patient_en,
    other_patient,  # noqa: F811
):
    held = paid_clinic.hold(patient_en)
    client.force_login(patient_en)
    payment = _checkout(client, held)
    invoice = Invoice.objects.create(
        number="INV-X", patient=patient_en.patient_profile, description="x", amount=Decimal("10")
    )
    client.logout()
    client.force_login(other_patient)
    before = AuditEvent.objects.filter(action=AuditAction.DENIED).count()
    for url in (
        reverse("payments:checkout", args=[held.public_id]),
        reverse("payments:payment_detail", args=[payment.public_id]),
        reverse("payments:invoice_pay", args=[invoice.public_id]),
        reverse("payments:insurance", args=[held.public_id]),
    ):
        method = client.post if url.endswith("insurance/") else client.get
        assert (
            method(url, {"kind": "dms", "insurer": "x", "policy_number": "12345678"}).status_code
            == 404
        )
    token = localstripe.create_token(GOOD_CARD)["id"]
    stolen = client.post(
        reverse("payments:confirm_card", args=[payment.public_id]), {"token": token}
    )
    assert stolen.status_code == 404
    assert AuditEvent.objects.filter(action=AuditAction.DENIED).count() == before + 5
    payment.refresh_from_db()
    held.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING and held.status == AppointmentStatus.HELD
    assert not InsuranceCoverage.objects.exists()


def test_a_forged_token_is_refused_before_the_provider(
    client, localstripe, paid_clinic, patient_en
):  # noqa: F811
    held = paid_clinic.hold(patient_en)
    client.force_login(patient_en)
    payment = _checkout(client, held)
    for token in ("", "pm_123", "tok_<script>", "x" * 300):
        response = client.post(
            reverse("payments:confirm_card", args=[payment.public_id]), {"token": token}
        )
        assert response.status_code == 400 and "could not be read" in response.json()["error"]
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING


def test_checkout_of_an_expired_hold_says_so_and_charges_nothing(
    client,
    localstripe,
    paid_clinic,
    patient_en,  # noqa: F811
):
    held = paid_clinic.hold(patient_en)
    Appointment.objects.filter(pk=held.pk).update(
        hold_expires_at=timezone.now() - timedelta(seconds=1)
    )
    client.force_login(patient_en)
    response = client.get(reverse("payments:checkout", args=[held.public_id]), follow=True)
    assert "the hold has ended" in response.content.decode()
    assert not Payment.objects.exists()


def test_the_gateway_being_away_gives_a_clear_page_not_an_error(
    client, paid_clinic, patient_en, settings
):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    held = paid_clinic.hold(patient_en)
    client.force_login(patient_en)
    response = client.get(reverse("payments:checkout", args=[held.public_id]))
    assert response.status_code == 503
    assert "We cannot reach the payment service" in response.content.decode()
    held.refresh_from_db()
    assert held.status == AppointmentStatus.HELD
    payment = Payment.objects.get()
    assert payment.status == PaymentStatus.PENDING and not payment.provider_payment_id


def test_hold_released_cancels_the_open_intent(
    localstripe,
    paid_clinic,
    patient_en,
    celery_eager,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    held = paid_clinic.hold(patient_en)
    payment = workflows.checkout_start(by=patient_en, appointment=held)
    from scheduling import services as scheduling_services

    Appointment.objects.filter(pk=held.pk).update(
        hold_expires_at=timezone.now() - timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        scheduling_services.release_expired_holds()
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.CANCELED
    from payments.gateway import gateway

    assert gateway().retrieve_payment_intent(payment.provider_payment_id).status == "canceled"


def test_services_refuse_refunds_beyond_what_is_left(paid_clinic, patient_en, admin_user):
    held = paid_clinic.hold(patient_en)
    payment = Payment.objects.create(
        patient=patient_en.patient_profile,
        appointment=held,
        amount=Decimal("1000.00"),
        status=PaymentStatus.SUCCEEDED,
        provider_payment_id="pi_test_local",
    )
    from django.core.exceptions import ValidationError

    services.refund_create(
        by=admin_user,
        payment=payment,
        amount=Decimal("600"),
        reason="admin",
        note="goodwill gesture",
    )
    with pytest.raises(ValidationError):
        services.refund_create(
            by=admin_user,
            payment=payment,
            amount=Decimal("500"),
            reason="admin",
            note="too much now",
        )
    assert Refund.objects.filter(payment=payment).count() == 1
