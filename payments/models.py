"""Money: what a patient pays (prepayment of an appointment or an invoice after a visit),
what goes back (refunds), the fiscal receipts Russian law (FZ-54) asks for each of them,
and the webhook events Stripe sent us.

Amounts are `Decimal` in the currency's major unit (roubles); the provider speaks minor
units (kopecks) and `payments.money` converts at the edge. Nothing medical is stored
here: an invoice's line says what was paid for only as a consultation type or a short
service name that reception typed, and is encrypted like every free text.

Rows are addressed by a random `public_id` in URLs, never by row id.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import PatientProfile
from clinic.crypto import EncryptedCharField
from scheduling.models import Appointment, ConsultationType

ZERO = Decimal("0")


# --- Invoices and insurance ------------------------------------------------------------


class InvoiceStatus(models.TextChoices):
    OPEN = "open", _("Awaiting payment")
    PAID = "paid", _("Paid")
    VOID = "void", _("Cancelled")


class Invoice(models.Model):
    """A bill for services after a visit, paid by the patient through the same checkout
    as a prepayment."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    number = models.CharField(_("number"), max_length=32, unique=True)
    patient = models.ForeignKey(
        PatientProfile, on_delete=models.PROTECT, related_name="invoices", verbose_name=_("patient")
    )
    appointment = models.ForeignKey(
        Appointment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoices",
        verbose_name=_("appointment"),
    )
    # Short service name for the receipt ("Consultation", "Blood sample"), encrypted.
    description = EncryptedCharField(_("service"), max_length=200)
    amount = models.DecimalField(
        _("amount"),
        max_digits=10,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    currency = models.CharField(_("currency"), max_length=3, default="RUB")
    status = models.CharField(
        _("status"),
        max_length=8,
        choices=InvoiceStatus.choices,
        default=InvoiceStatus.OPEN,
        db_index=True,
    )
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("issued by"),
    )
    created_at = models.DateTimeField(_("issued"), default=timezone.now)
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="invoice_amount_positive"),
        ]
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")

    def __str__(self) -> str:
        return f"{_('Invoice')} {self.number}"


class InsuranceKind(models.TextChoices):
    OMS = "oms", _("Compulsory health insurance (OMS)")
    DMS = "dms", _("Voluntary health insurance (DMS)")


class InsuranceCoverage(models.Model):
    """An appointment paid by an insurer: the policy is captured, nothing is charged, and
    reception sees the policy to check it at the desk."""

    appointment = models.OneToOneField(
        Appointment,
        on_delete=models.PROTECT,
        related_name="insurance_coverage",
        verbose_name=_("appointment"),
    )
    kind = models.CharField(_("insurance"), max_length=8, choices=InsuranceKind.choices)
    insurer = EncryptedCharField(_("insurance company"), max_length=200)
    policy_number = EncryptedCharField(_("policy number"), max_length=40)
    captured_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("captured by"),
    )
    captured_at = models.DateTimeField(_("captured"), default=timezone.now)
    checked_at = models.DateTimeField(_("checked at the desk"), null=True, blank=True)

    class Meta:
        verbose_name = _("insurance coverage")
        verbose_name_plural = _("insurance coverages")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {_('appointment')} {self.appointment_id}"


# --- Payments and refunds --------------------------------------------------------------


class PaymentStatus(models.TextChoices):
    # Mirrors the provider's PaymentIntent, narrowed to what the portal acts on.
    PENDING = "pending", _("Waiting for payment")
    PROCESSING = "processing", _("Being processed")
    SUCCEEDED = "succeeded", _("Paid")
    FAILED = "failed", _("Payment failed")
    CANCELED = "canceled", _("Cancelled")


class Payment(models.Model):
    """One charge through the provider: a prepayment of an appointment or the payment of
    an invoice. `refunded_amount` is the sum of succeeded refunds (kept in step by the
    refund services, under this row's lock)."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    patient = models.ForeignKey(
        PatientProfile, on_delete=models.PROTECT, related_name="payments", verbose_name=_("patient")
    )
    appointment = models.ForeignKey(
        Appointment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="payments",
        verbose_name=_("appointment"),
    )
    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="payments",
        verbose_name=_("invoice"),
    )
    # Copied at creation for the revenue reports, so they need no join through
    # appointments (and an invoice without an appointment still has a doctor).
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("doctor"),
    )
    consultation_type = models.ForeignKey(
        ConsultationType,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("consultation type"),
    )
    amount = models.DecimalField(_("amount"), max_digits=10, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3, default="RUB")
    status = models.CharField(
        _("status"),
        max_length=12,
        choices=PaymentStatus.choices,
        default=PaymentStatus.PENDING,
        db_index=True,
    )
    provider = models.CharField(_("provider"), max_length=16, default="stripe")
    provider_payment_id = models.CharField(
        _("provider payment id"), max_length=255, unique=True, null=True, blank=True
    )
    # The provider's own status string, as last read ("requires_payment_method", ...).
    provider_status = models.CharField(max_length=40, blank=True)
    failure_message = models.CharField(_("failure"), max_length=300, blank=True)
    refunded_amount = models.DecimalField(
        _("refunded"), max_digits=10, decimal_places=2, default=ZERO
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    succeeded_at = models.DateTimeField(_("paid at"), null=True, blank=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["doctor", "succeeded_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(appointment__isnull=False) | Q(invoice__isnull=False),
                name="payment_is_for_something",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=models.F("amount")),
                name="payment_refunds_within_amount",
            ),
            # One live attempt per appointment or invoice: a second click reuses it.
            models.UniqueConstraint(
                fields=["appointment"],
                condition=Q(status__in=["pending", "processing", "succeeded"])
                & Q(invoice__isnull=True),
                name="payment_one_live_per_appointment",
            ),
            models.UniqueConstraint(
                fields=["invoice"],
                condition=Q(status__in=["pending", "processing", "succeeded"]),
                name="payment_one_live_per_invoice",
            ),
        ]
        verbose_name = _("payment")
        verbose_name_plural = _("payments")

    def __str__(self) -> str:
        return f"{_('Payment')} {self.amount} {self.currency} · {self.get_status_display()}"

    @property
    def refundable_amount(self) -> Decimal:
        if self.status != PaymentStatus.SUCCEEDED:
            return ZERO
        return self.amount - self.refunded_amount


class RefundReason(models.TextChoices):
    CANCELLATION = "cancellation", _("Appointment cancelled")
    CLINIC_CANCELLED = "clinic_cancelled", _("Cancelled by the clinic")
    HOLD_EXPIRED = "hold_expired", _("Paid after the booking time ran out")
    ADMIN = "admin", _("Refund by the clinic")


class RefundStatus(models.TextChoices):
    PENDING = "pending", _("Being refunded")
    SUCCEEDED = "succeeded", _("Refunded")
    FAILED = "failed", _("Refund failed")


class Refund(models.Model):
    """Money back on a payment, whole or in part. `key` makes each automatic refund
    happen once (one per cancellation, one per late payment)."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, related_name="refunds", verbose_name=_("payment")
    )
    amount = models.DecimalField(_("amount"), max_digits=10, decimal_places=2)
    reason = models.CharField(_("reason"), max_length=20, choices=RefundReason.choices)
    note = EncryptedCharField(_("note"), max_length=300, blank=True)
    key = models.CharField(max_length=120, unique=True)
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=RefundStatus.choices,
        default=RefundStatus.PENDING,
        db_index=True,
    )
    provider_refund_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    failure_message = models.CharField(_("failure"), max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("requested"), default=timezone.now)
    succeeded_at = models.DateTimeField(_("refunded at"), null=True, blank=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
        ]
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")

    def __str__(self) -> str:
        return f"{_('Refund')} {self.amount} · {self.get_status_display()}"


# --- Fiscal receipts (FZ-54) -----------------------------------------------------------


class ReceiptKind(models.TextChoices):
    SELL = "sell", _("Sale")
    SELL_REFUND = "sell_refund", _("Refund")


class ReceiptState(models.TextChoices):
    PENDING = "pending", _("To be sent")
    # The operator accepted it and is fiscalising ("wait" in ATOL's report).
    WAITING = "waiting", _("Being fiscalised")
    DONE = "done", _("Fiscalised")
    # The operator refused it for good (bad data): needs a person.
    FAILED = "failed", _("Refused by the operator")


class FiscalReceipt(models.Model):
    """The fiscal receipt for one payment (sell) or one refund (sell_refund). Sent to the
    fiscal data operator until it confirms; `external_id` is our idempotency key there,
    so a resent receipt is never fiscalised twice."""

    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    kind = models.CharField(_("kind"), max_length=12, choices=ReceiptKind.choices)
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, related_name="receipts", verbose_name=_("payment")
    )
    refund = models.OneToOneField(
        Refund,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="receipt",
        verbose_name=_("refund"),
    )
    amount = models.DecimalField(_("amount"), max_digits=10, decimal_places=2)
    external_id = models.CharField(_("our id at the operator"), max_length=128, unique=True)
    provider = models.CharField(_("operator"), max_length=16, default="atol")
    provider_uuid = models.CharField(_("operator's id"), max_length=64, blank=True)
    state = models.CharField(
        _("state"),
        max_length=10,
        choices=ReceiptState.choices,
        default=ReceiptState.PENDING,
        db_index=True,
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    # What the operator returned once fiscalised (FZ-54 requisites).
    fiscal_receipt_number = models.CharField(max_length=32, blank=True)
    fiscal_document_number = models.CharField(max_length=32, blank=True)
    fiscal_document_attribute = models.CharField(max_length=32, blank=True)
    fn_number = models.CharField(max_length=32, blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    receipt_url = models.URLField(_("receipt link"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    confirmed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        constraints = [
            # Exactly one sale receipt per payment, one refund receipt per refund.
            models.UniqueConstraint(
                fields=["payment"],
                condition=Q(kind="sell"),
                name="receipt_one_sell_per_payment",
            ),
            models.CheckConstraint(
                condition=(Q(kind="sell") & Q(refund__isnull=True))
                | (Q(kind="sell_refund") & Q(refund__isnull=False)),
                name="receipt_kind_matches_refund",
            ),
        ]
        verbose_name = _("fiscal receipt")
        verbose_name_plural = _("fiscal receipts")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} · {self.get_state_display()}"


# --- Provider webhooks -----------------------------------------------------------------


class WebhookOutcome(models.TextChoices):
    PROCESSED = "processed", _("Processed")
    IGNORED = "ignored", _("Unknown type, ignored")
    NO_MATCH = "no_match", _("Not one of ours")


class WebhookEvent(models.Model):
    """Each provider event id, stored in the transaction that processes it, so a
    redelivered event is recognised and changes nothing. The payload is not kept: the
    state comes from re-reading the object at the provider."""

    provider = models.CharField(max_length=16, default="stripe")
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255, blank=True)
    livemode = models.BooleanField(default=False)
    created_at_provider = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=10, choices=WebhookOutcome.choices)
    deliveries = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_event_once"),
        ]
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
