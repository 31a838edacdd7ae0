"""Payments' writes: payment rows and their state, refunds, invoices, insurance.

Talking to Stripe happens outside the database transaction (a slow provider must not
hold row locks); each function below that calls the provider first commits the row that
says what it is about to do, so a crash in between leaves a row the sweep finds again
(DESIGN.md rule 1). Idempotency keys sent to Stripe are derived from our row's public id,
so a retried call never charges or refunds twice.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import policies
from accounts.models import PatientProfile, User
from audit.models import AuditAction
from audit.services import audit_record
from payments.models import (
    ZERO,
    InsuranceCoverage,
    InsuranceKind,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Refund,
    RefundReason,
    RefundStatus,
)
from scheduling.models import Appointment

logger = logging.getLogger(__name__)

# How long a refund row waits before the sweep sends it again (the task was lost).
REFUND_RETRY_AFTER = timedelta(minutes=5)


class PaymentProblem(Exception):
    """A user-facing reason why a payment or refund cannot go ahead (nothing changed)."""


# --- Payments ----------------------------------------------------------------------------


def payment_for_appointment(*, appointment: Appointment) -> Payment:
    """The live payment of a held appointment, created on first use. Two tabs or a double
    click reuse the same row (and so the same PaymentIntent)."""
    with transaction.atomic():
        live = (
            Payment.objects.select_for_update()
            .filter(
                appointment=appointment,
                invoice__isnull=True,
                status__in=[
                    PaymentStatus.PENDING,
                    PaymentStatus.PROCESSING,
                    PaymentStatus.SUCCEEDED,
                ],
            )
            .first()
        )
        if live is not None:
            return live
        try:
            with transaction.atomic():
                payment = Payment.objects.create(
                    patient_id=appointment.patient_id,
                    appointment=appointment,
                    doctor_id=appointment.doctor_id,
                    consultation_type_id=appointment.consultation_type_id,
                    amount=appointment.price,
                    currency=appointment.currency,
                )
        except IntegrityError:  # another request created it a moment ago
            return Payment.objects.get(
                appointment=appointment,
                invoice__isnull=True,
                status__in=[
                    PaymentStatus.PENDING,
                    PaymentStatus.PROCESSING,
                    PaymentStatus.SUCCEEDED,
                ],
            )
        audit_record(
            actor=appointment.patient.user,
            action=AuditAction.CREATE,
            obj=payment,
            patient=appointment.patient.user,
            detail={"amount": str(payment.amount), "for": "appointment"},
        )
        return payment


def payment_for_invoice(*, invoice: Invoice) -> Payment:
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != InvoiceStatus.OPEN:
            raise PaymentProblem(_("This invoice is not awaiting payment."))
        live = invoice.payments.filter(
            status__in=[PaymentStatus.PENDING, PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED]
        ).first()
        if live is not None:
            return live
        appointment = invoice.appointment
        payment = Payment.objects.create(
            patient_id=invoice.patient_id,
            appointment=appointment,
            invoice=invoice,
            doctor_id=appointment.doctor_id if appointment else None,
            consultation_type_id=appointment.consultation_type_id if appointment else None,
            amount=invoice.amount,
            currency=invoice.currency,
        )
        audit_record(
            actor=invoice.patient.user,
            action=AuditAction.CREATE,
            obj=payment,
            patient=invoice.patient.user,
            detail={"amount": str(payment.amount), "for": "invoice", "invoice": invoice.number},
        )
        return payment


def payment_attach_provider_id(*, payment: Payment, provider_payment_id: str) -> Payment:
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.provider_payment_id and payment.provider_payment_id != provider_payment_id:
            # The idempotency key makes the provider answer with the same intent; a
            # different one means two intents for one payment: keep the first, say so.
            logger.error("payment %s got a second provider intent", payment.pk)
            return payment
        payment.provider_payment_id = provider_payment_id
        payment.save(update_fields=["provider_payment_id", "updated_at"])
        return payment


def payment_apply_provider_state(
    *, payment: Payment, provider_status: str, failure_message: str = ""
) -> tuple[Payment, str]:
    """Move a payment to the state the provider reports (re-read from the provider, never
    taken from a webhook's body). Returns the payment and what changed: "succeeded",
    "failed", "canceled", "processing" or "" (nothing). Caller holds the transaction."""
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    target = {
        "succeeded": PaymentStatus.SUCCEEDED,
        "processing": PaymentStatus.PROCESSING,
        "canceled": PaymentStatus.CANCELED,
    }.get(provider_status)
    if provider_status == "requires_payment_method" and failure_message:
        target = PaymentStatus.FAILED
    if target is None or payment.status == target:
        if payment.provider_status != provider_status:
            payment.provider_status = provider_status
            payment.save(update_fields=["provider_status", "updated_at"])
        return payment, ""
    if payment.status == PaymentStatus.SUCCEEDED:
        # Money that arrived stays arrived; refunds are their own rows.
        return payment, ""
    previous = payment.status
    payment.status = target
    payment.provider_status = provider_status
    payment.failure_message = failure_message[:300] if target == PaymentStatus.FAILED else ""
    fields = ["status", "provider_status", "failure_message", "updated_at"]
    if target == PaymentStatus.SUCCEEDED:
        payment.succeeded_at = timezone.now()
        fields.append("succeeded_at")
    payment.save(update_fields=fields)
    audit_record(
        actor=None,
        action=AuditAction.CHANGE,
        obj=payment,
        patient=payment.patient.user,
        detail={"status": target, "from": previous},
    )
    if target == PaymentStatus.SUCCEEDED:
        from payments.services_fiscal import receipt_create_for_payment

        receipt_create_for_payment(payment=payment)
        if payment.invoice_id:
            Invoice.objects.filter(pk=payment.invoice_id).update(
                status=InvoiceStatus.PAID, paid_at=payment.succeeded_at
            )
    return payment, str(target)


# --- Refunds -------------------------------------------------------------------------------


def _pending_refunds(payment: Payment) -> Decimal:
    return payment.refunds.filter(status=RefundStatus.PENDING).aggregate(s=Sum("amount"))[
        "s"
    ] or Decimal("0")


def refund_create(
    *,
    by: User | None,
    payment: Payment,
    amount: Decimal,
    reason: str,
    key: str = "",
    note: str = "",
) -> Refund | None:
    """Ask for money back on a payment (whole or part). The row commits with the caller's
    transaction and is sent to the provider on commit (and by the sweep). Idempotent by
    `key`: the same cancellation never refunds twice. Returns None when nothing is left
    to refund."""
    if reason not in RefundReason.values:
        raise ValidationError({"reason": _("Unknown refund reason.")})
    if by is not None and not policies.can_refund_payment(by, payment):
        raise PermissionDenied
    amount = Decimal(amount).quantize(Decimal("0.01"))
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        key = key or f"{reason}:{payment.pk}:{secrets.token_hex(8)}"
        existing = Refund.objects.filter(key=key).first()
        if existing is not None:
            return existing
        if payment.status != PaymentStatus.SUCCEEDED:
            raise PaymentProblem(_("Only a completed payment can be refunded."))
        available = payment.amount - payment.refunded_amount - _pending_refunds(payment)
        if amount <= ZERO:
            raise ValidationError({"amount": _("The refund must be more than zero.")})
        if amount > available:
            if by is not None:
                raise ValidationError(
                    {
                        "amount": _("At most %(amount)s %(currency)s can still be refunded.")
                        % {"amount": available, "currency": payment.currency}
                    }
                )
            amount = available
            if amount <= ZERO:
                return None
        refund = Refund.objects.create(
            payment=payment,
            amount=amount,
            reason=reason,
            key=key[:120],
            note=note[:300],
            requested_by=by,
        )
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=refund,
            patient=payment.patient.user,
            detail={"amount": str(amount), "reason": reason, "payment": str(payment.public_id)},
        )
        from payments.tasks import send_refund

        transaction.on_commit(lambda: send_refund.delay(refund.pk))
    return refund


def refund_apply_provider_state(
    *, refund: Refund, provider_refund_id: str, provider_status: str, failure_message: str = ""
) -> Refund:
    """Record what the provider says about a refund (re-read, never from a webhook body).
    A refund that succeeded adds to the payment's refunded amount once, makes its refund
    receipt and tells the patient."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.provider_refund_id != provider_refund_id:
            refund.provider_refund_id = provider_refund_id
            refund.save(update_fields=["provider_refund_id", "updated_at"])
        if refund.status == RefundStatus.SUCCEEDED:
            return refund
        if provider_status == "succeeded":
            payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
            refund.status = RefundStatus.SUCCEEDED
            refund.succeeded_at = timezone.now()
            refund.failure_message = ""
            refund.save(update_fields=["status", "succeeded_at", "failure_message", "updated_at"])
            Payment.objects.filter(pk=payment.pk).update(
                refunded_amount=F("refunded_amount") + refund.amount, updated_at=timezone.now()
            )
            audit_record(
                actor=None,
                action=AuditAction.CHANGE,
                obj=refund,
                patient=payment.patient.user,
                detail={"status": "succeeded", "amount": str(refund.amount)},
            )
            from notifications.models import Event
            from notifications.services import notification_send
            from payments.services_fiscal import receipt_create_for_refund

            receipt_create_for_refund(refund=refund)
            if refund.reason != RefundReason.HOLD_EXPIRED:  # that one has its own message
                notification_send(
                    user_id=payment.patient.user_id,
                    event=Event.REFUND_ISSUED,
                    object_type="refund",
                    object_id=refund.pk,
                )
        elif provider_status in ("failed", "canceled"):
            refund.status = RefundStatus.FAILED
            refund.failure_message = (failure_message or provider_status)[:300]
            refund.save(update_fields=["status", "failure_message", "updated_at"])
            audit_record(
                actor=None,
                action=AuditAction.CHANGE,
                obj=refund,
                patient=refund.payment.patient.user,
                detail={"status": "failed"},
            )
        # "pending" / "requires_action": the provider is still working; a webhook or the
        # sweep reads it again.
    return refund


def refund_send(*, refund_id: int) -> Refund:
    """Send a pending refund to the provider (the task body; safe to run twice: the
    idempotency key is the refund's own id)."""
    from payments.gateway import GatewayUnavailable, gateway
    from payments.money import to_minor

    with transaction.atomic():
        refund = (
            Refund.objects.select_for_update(skip_locked=True)
            .select_related("payment")
            .filter(pk=refund_id, status=RefundStatus.PENDING)
            .first()
        )
        if refund is None:
            return Refund.objects.get(pk=refund_id)
        refund.attempts += 1
        refund.save(update_fields=["attempts", "updated_at"])
    payment = refund.payment
    client = gateway()
    try:
        if refund.provider_refund_id:
            info = client.retrieve_refund(refund.provider_refund_id)
        else:
            info = client.create_refund(
                payment_intent_id=payment.provider_payment_id,
                amount_minor=to_minor(refund.amount, payment.currency),
                idempotency_key=f"refund-{refund.public_id}",
                metadata={"refund": str(refund.public_id), "payment": str(payment.public_id)},
            )
    except GatewayUnavailable:
        logger.warning("refund %s: provider unavailable, the sweep will retry", refund.pk)
        return refund
    return refund_apply_provider_state(
        refund=refund,
        provider_refund_id=info.id,
        provider_status=info.status,
        failure_message=info.failure_reason or "",
    )


def refund_sync(*, provider_refund_id: str) -> Refund | None:
    """A provider event about a refund: re-read it there and apply. None when the refund
    is not ours (made in the provider's dashboard, say)."""
    from payments.gateway import gateway

    refund = Refund.objects.filter(provider_refund_id=provider_refund_id).first()
    info = gateway().retrieve_refund(provider_refund_id)
    if refund is None:
        public_id = (info.metadata or {}).get("refund") if hasattr(info, "metadata") else None
        refund = Refund.objects.filter(public_id=public_id).first() if public_id else None
    if refund is None:
        return None
    return refund_apply_provider_state(
        refund=refund,
        provider_refund_id=info.id,
        provider_status=info.status,
        failure_message=info.failure_reason or "",
    )


def refunds_sweep(*, now=None) -> int:  # noqa: ANN001
    """Queue refunds still pending after a while (their task was lost or the provider was
    away). Returns how many were queued."""
    from payments.tasks import send_refund

    now = now or timezone.now()
    ids = list(
        Refund.objects.filter(
            status=RefundStatus.PENDING, updated_at__lte=now - REFUND_RETRY_AFTER
        ).values_list("pk", flat=True)[:500]
    )
    for refund_id in ids:
        send_refund.delay(refund_id)
    return len(ids)


# --- Invoices and insurance ----------------------------------------------------------------


def _invoice_number() -> str:
    today = timezone.localdate()
    return f"INV-{today:%Y%m%d}-{secrets.token_hex(3).upper()}"


def invoice_issue(
    *,
    by: User,
    patient: PatientProfile,
    description: str,
    amount: Decimal,
    appointment: Appointment | None = None,
    currency: str = "RUB",
) -> Invoice:
    if not policies.can_issue_invoice(by, patient):
        raise PermissionDenied
    if appointment is not None and appointment.patient_id != patient.pk:
        raise ValidationError({"appointment": _("This appointment belongs to another patient.")})
    description = (description or "").strip()
    if not description:
        raise ValidationError({"description": _("Say what the invoice is for.")})
    if amount is None or amount <= ZERO:
        raise ValidationError({"amount": _("The amount must be more than zero.")})
    with transaction.atomic():
        invoice = Invoice.objects.create(
            number=_invoice_number(),
            patient=patient,
            appointment=appointment,
            description=description[:200],
            amount=amount,
            currency=currency,
            issued_by=by,
        )
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=invoice,
            patient=patient.user,
            detail={"amount": str(amount), "number": invoice.number},
        )
        from notifications.models import Event
        from notifications.services import notification_send

        notification_send(
            user_id=patient.user_id,
            event=Event.INVOICE_ISSUED,
            object_type="invoice",
            object_id=invoice.pk,
        )
    return invoice


def invoice_void(*, by: User, invoice: Invoice) -> Invoice:
    if not policies.can_issue_invoice(by, invoice.patient):
        raise PermissionDenied
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != InvoiceStatus.OPEN:
            raise PaymentProblem(_("Only an unpaid invoice can be cancelled."))
        if invoice.payments.filter(status=PaymentStatus.PROCESSING).exists():
            raise PaymentProblem(_("A payment of this invoice is being processed."))
        invoice.status = InvoiceStatus.VOID
        invoice.save(update_fields=["status"])
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=invoice,
            patient=invoice.patient.user,
            detail={"status": "void"},
        )
    return invoice


def insurance_capture(
    *, by: User, appointment: Appointment, kind: str, insurer: str, policy_number: str
) -> InsuranceCoverage:
    """Record that an insurer pays for this appointment: no charge is made."""
    if not policies.can_capture_insurance(by, appointment):
        raise PermissionDenied
    insurer = (insurer or "").strip()
    policy_number = "".join((policy_number or "").split())
    errors = {}
    if kind not in InsuranceKind.values:
        errors["kind"] = _("Choose the kind of insurance.")
    if not insurer:
        errors["insurer"] = _("Enter the insurance company.")
    if not (6 <= len(policy_number) <= 40) or not policy_number.replace("-", "").isalnum():
        errors["policy_number"] = _("Enter the policy number as it is printed on the policy.")
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        coverage, created = InsuranceCoverage.objects.update_or_create(
            appointment=appointment,
            defaults={
                "kind": kind,
                "insurer": insurer[:200],
                "policy_number": policy_number,
                "captured_by": by,
                "captured_at": timezone.now(),
                "checked_at": None,
            },
        )
        audit_record(
            actor=by,
            action=AuditAction.CREATE if created else AuditAction.CHANGE,
            obj=coverage,
            patient=appointment.patient.user,
            detail={"kind": kind},
        )
    return coverage


def insurance_mark_checked(*, by: User, coverage: InsuranceCoverage) -> InsuranceCoverage:
    if not policies.can_check_insurance(by):
        raise PermissionDenied
    with transaction.atomic():
        coverage = InsuranceCoverage.objects.select_for_update().get(pk=coverage.pk)
        coverage.checked_at = timezone.now()
        coverage.save(update_fields=["checked_at"])
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=coverage,
            patient=coverage.appointment.patient.user,
            detail={"checked": True},
        )
    return coverage
