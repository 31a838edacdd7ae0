"""Reads of fiscal receipts for the payments pages. Not medical data: not audited."""

from __future__ import annotations

from django.db.models import QuerySet

from payments.models import FiscalReceipt, Payment


def receipts_for_payment(payment: Payment) -> QuerySet[FiscalReceipt]:
    """The payment's receipts, oldest first: its sale receipt and one per refund."""
    return (
        FiscalReceipt.objects.filter(payment=payment)
        .select_related("refund")
        .order_by("created_at", "pk")
    )
