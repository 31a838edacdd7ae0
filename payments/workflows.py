"""Checkout: the steps that span payments and scheduling (DESIGN.md: a workflow lives in
the highest app involved and calls the lower apps' services).

Prepayment of a booking:
1. scheduling holds the slot (HELD, 10 minutes) and sends the patient here;
2. `checkout_start` makes (or reuses) the Payment row and its PaymentIntent;
3. the browser pays with Stripe.js;
4. `payment_intent_sync` — from the return page, the server-side confirmation or any
   webhook, in any order, any number of times — re-reads the PaymentIntent from Stripe
   and acts on what Stripe says now: paid → the hold becomes a booking; failed or
   cancelled → the hold is released; paid after the hold ended → refunded in full and the
   patient told.

Cancelling a prepaid booking refunds under the consultation type's policy
(`on_appointment_cancelled`, registered on scheduling's hook).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from payments import services
from payments.models import ZERO, Invoice, Payment, PaymentStatus, RefundReason
from scheduling import services as scheduling_services
from scheduling.models import Appointment, AppointmentStatus

logger = logging.getLogger(__name__)

CHECKOUT_DESCRIPTION = "Medical services"  # no specialty or doctor at the provider


def _ensure_intent(payment: Payment) -> Payment:
    """Create the provider's PaymentIntent once (the idempotency key is the payment's
    id, so a retry after a lost answer gets the same intent back)."""
    if payment.provider_payment_id:
        return payment
    from payments.gateway import gateway
    from payments.money import to_minor

    info = gateway().create_payment_intent(
        amount_minor=to_minor(payment.amount, payment.currency),
        currency=payment.currency.lower(),
        metadata={"payment": str(payment.public_id)},
        idempotency_key=f"payment-{payment.public_id}",
        description=CHECKOUT_DESCRIPTION,
    )
    return services.payment_attach_provider_id(payment=payment, provider_payment_id=info.id)


def checkout_start(*, by: User, appointment: Appointment) -> Payment:
    """The payment for a held appointment, with its PaymentIntent."""
    if by.pk != appointment.patient.user_id:
        raise PermissionDenied
    if (
        appointment.status != AppointmentStatus.HELD
        or appointment.hold_expires_at <= timezone.now()
    ):
        raise services.PaymentProblem(
            _("The time was held for you, but the hold has ended. Please book again.")
        )
    if appointment.price <= ZERO:
        raise services.PaymentProblem(_("There is nothing to pay for this appointment."))
    payment = services.payment_for_appointment(appointment=appointment)
    return _ensure_intent(payment)


def invoice_checkout_start(*, by: User, invoice: Invoice) -> Payment:
    if by.pk != invoice.patient.user_id:
        raise PermissionDenied
    payment = services.payment_for_invoice(invoice=invoice)
    return _ensure_intent(payment)


def client_secret_for(payment: Payment) -> str:
    """Read fresh from the provider (never stored: it lets a browser pay this intent)."""
    from payments.gateway import gateway

    return gateway().retrieve_payment_intent(payment.provider_payment_id).client_secret


def confirm_with_card_token(*, by: User, payment: Payment, token_id: str) -> tuple[Payment, str]:
    """Server-side confirmation (the browser sent a card token). Returns the payment and
    the intent's status ("requires_action" means the browser must authenticate)."""
    from payments.gateway import gateway

    if by.pk != payment.patient.user_id:
        raise PermissionDenied
    if payment.status not in (PaymentStatus.PENDING,):
        return payment, payment.provider_status or payment.status
    if payment.appointment_id and not payment.invoice_id:
        appointment = payment.appointment
        if (
            appointment.status != AppointmentStatus.HELD
            or appointment.hold_expires_at <= timezone.now()
        ):
            raise services.PaymentProblem(
                _("The time was held for you, but the hold has ended. Please book again.")
            )
    from payments.gateway import PaymentRejected

    try:
        info = gateway().confirm_with_card_token(payment.provider_payment_id, token_id)
    except PaymentRejected:
        # Declined: the intent says so now; record it (and release the hold) before the
        # patient reads the message.
        payment_intent_sync(intent_id=payment.provider_payment_id)
        raise
    payment = payment_intent_sync(intent_id=info.id) or payment
    return payment, info.status


def payment_intent_sync(*, intent_id: str) -> Payment | None:
    """Bring our payment (and its booking) in line with what Stripe says about the intent
    now. Safe in any order and any number of times. None when the intent is not ours."""
    from payments.gateway import gateway

    payment = Payment.objects.filter(provider_payment_id=intent_id).first()
    if payment is None:
        return None
    info = gateway().retrieve_payment_intent(intent_id)
    with transaction.atomic():
        payment, changed = services.payment_apply_provider_state(
            payment=payment,
            provider_status=info.status,
            failure_message=info.last_error_message or "",
        )
        if changed == "succeeded":
            _on_paid(payment)
        elif changed in ("failed", "canceled"):
            _on_not_paid(payment)
    return payment


def _on_paid(payment: Payment) -> None:
    if payment.invoice_id or not payment.appointment_id:
        return
    appointment = payment.appointment
    try:
        scheduling_services.appointment_book(by=None, appointment=appointment)
    except scheduling_services.HoldExpired:
        # Paid after the hold ended (the slot may be someone else's now): give it all back.
        scheduling_services.appointment_hold_release(
            by=None, appointment=appointment, reason="paid after the hold ended"
        )
        services.refund_create(
            by=None,
            payment=payment,
            amount=payment.amount,
            reason=RefundReason.HOLD_EXPIRED,
            key=f"hold_expired:{payment.pk}",
        )
        from notifications.models import Event
        from notifications.services import notification_send

        notification_send(
            user_id=payment.patient.user_id,
            event=Event.PAYMENT_TOO_LATE,
            object_type="payment",
            object_id=payment.pk,
        )


def _on_not_paid(payment: Payment) -> None:
    if payment.invoice_id or not payment.appointment_id:
        return
    scheduling_services.appointment_hold_release(
        by=None, appointment=payment.appointment, reason="payment not completed"
    )


# --- Scheduling's hooks ----------------------------------------------------------------------


def refund_due_on_cancellation(
    payment: Payment, *, cancellation_fee: Decimal, free: bool, by_clinic: bool
) -> Decimal:
    """The consultation type's policy: inside the free window (or cancelled by the
    clinic) everything comes back; later, everything but the fee (partial), or nothing
    when the fee is the whole price."""
    refundable = payment.amount - payment.refunded_amount
    if free or by_clinic:
        return refundable
    return max(ZERO, refundable - cancellation_fee)


def on_appointment_cancelled(
    *, appointment_id: int, cancellation_fee: Decimal, free: bool, by_clinic: bool, **_: object
) -> None:
    """Inside the cancelling transaction: the refund row commits with the cancellation."""
    payments = Payment.objects.filter(
        appointment_id=appointment_id, invoice__isnull=True, status=PaymentStatus.SUCCEEDED
    )
    for payment in payments:
        amount = refund_due_on_cancellation(
            payment, cancellation_fee=cancellation_fee, free=free, by_clinic=by_clinic
        )
        if amount <= ZERO:
            continue
        services.refund_create(
            by=None,
            payment=payment,
            amount=amount,
            reason=RefundReason.CLINIC_CANCELLED if by_clinic else RefundReason.CANCELLATION,
            key=f"cancel:{appointment_id}:{payment.pk}",
        )


def on_hold_released(*, appointment_id: int, **_: object) -> None:
    """A hold ended while its payment was open: cancel the intent at the provider, so it
    cannot be paid later (if it is paid anyway, `payment_intent_sync` refunds it)."""
    open_ids = list(
        Payment.objects.filter(
            appointment_id=appointment_id,
            invoice__isnull=True,
            status=PaymentStatus.PENDING,
            provider_payment_id__isnull=False,
        ).values_list("provider_payment_id", flat=True)
    )
    if open_ids:
        from payments.tasks import cancel_intent

        for intent_id in open_ids:
            transaction.on_commit(lambda i=intent_id: cancel_intent.delay(i))


# An open payment whose state has not moved for this long is re-read from the provider
# (its webhook may have been lost); a day later it is left alone.
STALE_AFTER = timedelta(minutes=3)
GIVE_UP_AFTER = timedelta(days=1)


def stale_intents(*, now=None) -> list[str]:  # noqa: ANN001
    now = now or timezone.now()
    return list(
        Payment.objects.filter(
            status__in=[PaymentStatus.PENDING, PaymentStatus.PROCESSING],
            provider_payment_id__isnull=False,
            updated_at__lte=now - STALE_AFTER,
            created_at__gte=now - GIVE_UP_AFTER,
        )
        .order_by("updated_at")
        .values_list("provider_payment_id", flat=True)[:200]
    )


def checkout_url(*, appointment: Appointment) -> str:
    from django.urls import reverse

    if appointment.consultation_type.prepayment_required and appointment.price > ZERO:
        return reverse("payments:checkout", args=[appointment.public_id])
    return ""


def intent_cancel(*, intent_id: str) -> Payment | None:
    """The task body behind `on_hold_released`: cancel at the provider, then sync."""
    from payments.gateway import GatewayError, gateway

    try:
        gateway().cancel_payment_intent(intent_id)
    except GatewayError as exc:  # already paid or already cancelled: sync decides
        logger.info("intent cancel refused: %s", exc.__class__.__name__)
    return payment_intent_sync(intent_id=intent_id)


def insurance_checkout(
    *, by: User, appointment: Appointment, kind: str, insurer: str, policy_number: str
) -> Appointment:
    """An insurer pays: the policy is captured and the hold becomes a booking, no charge."""
    if by.pk != appointment.patient.user_id:
        raise PermissionDenied
    with transaction.atomic():
        services.insurance_capture(
            by=by, appointment=appointment, kind=kind, insurer=insurer, policy_number=policy_number
        )
        try:
            return scheduling_services.appointment_book(by=by, appointment=appointment)
        except scheduling_services.HoldExpired:
            raise services.PaymentProblem(
                _("The time was held for you, but the hold has ended. Please book again.")
            ) from None
