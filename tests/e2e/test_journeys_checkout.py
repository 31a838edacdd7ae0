"""The issue's "done when" for payments, in a browser: a patient pays for a booking
through localstripe's test Stripe.js and sees it confirmed; cancelling within the free
window refunds in full and produces a refund receipt (fiscalised by the fake ATOL).

axe-core runs on every screen; the `page` fixture fails on console errors and CSP
violations (the checkout page allows localstripe's origin, and only that page).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from payments.models import (
    FiscalReceipt,
    Payment,
    PaymentStatus,
    ReceiptKind,
    ReceiptState,
    Refund,
    RefundStatus,
)
from scheduling.models import AppointmentStatus
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in
from tests.payments.conftest import fake_atol  # noqa: F401
from tests.payments.helpers import make_paid_clinic
from tests.payments.localstripe import localstripe, localstripe_server  # noqa: F401


def _fiscalise_open_receipts() -> None:
    """What the receipts sweep does over the next minutes: poll the operator until it
    answers "done" (the fake answers "wait" once first)."""
    from payments.services_fiscal import receipt_send

    later = timezone.now() + timedelta(hours=2)
    for _ in range(3):
        for receipt_id in FiscalReceipt.objects.exclude(state=ReceiptState.DONE).values_list(
            "pk", flat=True
        ):
            receipt_send(receipt_id=receipt_id, now=later)
            later += timedelta(hours=2)


def _documents(fake, operation: str) -> list:  # noqa: ANN001
    return [d for d in fake.documents if d.operation == operation]


def test_patient_pays_for_a_booking_then_cancels_and_gets_a_refund_receipt(
    live_server,
    page: Page,
    localstripe,  # noqa: F811
    fake_atol,  # noqa: F811
    celery_eager,
):
    clinic = make_paid_clinic()
    patient = factories.make_patient(first_name="Vera", language="en")
    held = clinic.hold(patient, days_ahead=3)

    sign_in(page, patient.email)
    page.goto(reverse("scheduling:appointment_payment", args=[held.public_id]))
    expect(page).to_have_url(live_server.url + reverse("payments:checkout", args=[held.public_id]))
    expect(page.get_by_role("heading", level=1)).to_have_text("Payment")
    expect(page.get_by_text("This time is held for you until")).to_be_visible()

    # localstripe's test Stripe.js draws its card fields; our script labels them.
    page.get_by_label("Card number").fill("4242424242424242")
    page.get_by_label("Expiry month (MM)").fill("12")
    page.get_by_label("Expiry year (YY)").fill("34")
    page.get_by_label("Security code (CVC)").fill("123")
    postal = page.get_by_label("Postal code")
    if postal.count():
        postal.fill("101000")
    assert_accessible(page)
    page.get_by_role("button", name="Pay 2").click()

    expect(page.get_by_text("Paid. Your appointment is booked.")).to_be_visible(timeout=20_000)
    assert_accessible(page)
    payment = Payment.objects.get(appointment=held)
    held.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED and held.status == AppointmentStatus.BOOKED
    _fiscalise_open_receipts()
    sale = FiscalReceipt.objects.get(payment=payment, kind=ReceiptKind.SELL)
    assert sale.state == ReceiptState.DONE and sale.receipt_url
    assert len(_documents(fake_atol, "sell")) == 1

    # Cancel inside the free window (the visit is three days away).
    page.get_by_role("link", name="See the appointment").click()
    page.get_by_role("link", name="Cancel appointment").click()
    assert_accessible(page)
    page.get_by_role("button", name="Yes, cancel the appointment").click()
    expect(page.get_by_text("Cancelled").first).to_be_visible()

    refund = Refund.objects.get(payment=payment)
    assert refund.amount == Decimal("2500.00") and refund.status == RefundStatus.SUCCEEDED
    _fiscalise_open_receipts()
    refund_receipt = FiscalReceipt.objects.get(refund=refund)
    assert refund_receipt.kind == ReceiptKind.SELL_REFUND
    assert refund_receipt.state == ReceiptState.DONE and refund_receipt.amount == Decimal("2500.00")
    assert len(_documents(fake_atol, "sell_refund")) == 1

    # The patient sees the refund and both receipts.
    page.goto(reverse("payments:history"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Payments and receipts")
    expect(page.get_by_text("Appointment cancelled")).to_be_visible()
    expect(page.get_by_role("link", name="Open the receipt")).to_have_count(2)
    assert_accessible(page)
