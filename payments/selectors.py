"""Payments' reads. What a patient paid for hints at their health, so a refusal is
recorded like one of medical data and answered with 404 (ids cannot be probed)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, F, Prefetch, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.http import Http404

from accounts import policies
from accounts.models import PatientProfile, User
from audit.models import AuditAction
from audit.services import audit_record
from payments.models import (
    ZERO,
    FiscalReceipt,
    InsuranceCoverage,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from scheduling.models import Appointment


def _deny(user: Any, what: str, obj: Any, patient_user: Any) -> Http404:
    audit_record(
        actor=user,
        action=AuditAction.DENIED,
        obj=obj,
        patient=patient_user,
        detail={"what": what},
    )
    return Http404()


def _payments() -> QuerySet[Payment]:
    return Payment.objects.select_related(
        "patient__user", "appointment__location", "invoice"
    ).prefetch_related(
        Prefetch("refunds", queryset=Refund.objects.order_by("created_at")),
        Prefetch("receipts", queryset=FiscalReceipt.objects.order_by("created_at")),
    )


def payment_get_for(user: User, public_id: object) -> Payment:
    payment = _payments().filter(public_id=public_id).first()
    if payment is None:
        raise Http404
    if not policies.can_view_payments_of(user, payment.patient):
        raise _deny(user, "payment", payment, payment.patient.user)
    return payment


def payment_get_for_payer(user: User, public_id: object) -> Payment:
    """A payment the user is paying now (their own only, even for staff)."""
    payment = _payments().filter(public_id=public_id).first()
    if payment is None:
        raise Http404
    if not policies.can_pay(user, payment.patient):
        raise _deny(user, "payment", payment, payment.patient.user)
    return payment


def payments_of(profile: PatientProfile) -> list[Payment]:
    return list(_payments().filter(patient=profile).order_by("-created_at")[:200])


def invoices_of(profile: PatientProfile) -> list[Invoice]:
    return list(
        Invoice.objects.filter(patient=profile)
        .select_related("appointment")
        .order_by("status", "-created_at")[:200]
    )


def invoice_get_for_payer(user: User, public_id: object) -> Invoice:
    invoice = Invoice.objects.select_related("patient__user").filter(public_id=public_id).first()
    if invoice is None:
        raise Http404
    if not policies.can_pay(user, invoice.patient):
        raise _deny(user, "invoice", invoice, invoice.patient.user)
    return invoice


def open_invoice_count(profile: PatientProfile) -> int:
    return Invoice.objects.filter(patient=profile, status=InvoiceStatus.OPEN).count()


@dataclass
class AppointmentMoney:
    payments: list[Payment]
    coverage: InsuranceCoverage | None
    invoices: list[Invoice]

    @property
    def empty(self) -> bool:
        return not (self.payments or self.coverage or self.invoices)


def money_for_appointment(appointment: Appointment) -> AppointmentMoney:
    """Payments (with refunds and receipts), insurance and invoices of one appointment,
    for its pages (the caller has already decided the user may see the appointment)."""
    return AppointmentMoney(
        payments=list(_payments().filter(appointment=appointment).order_by("created_at")),
        coverage=InsuranceCoverage.objects.filter(appointment=appointment).first(),
        invoices=list(Invoice.objects.filter(appointment=appointment).order_by("created_at")),
    )


# --- Revenue -----------------------------------------------------------------------------------


@dataclass
class RevenueRow:
    key: Any
    label: str
    paid: Decimal = ZERO
    refunded: Decimal = ZERO
    payments: int = 0
    refunds: int = 0

    @property
    def net(self) -> Decimal:
        return self.paid - self.refunded


@dataclass
class RevenueReport:
    date_from: date
    date_to: date
    group_by: str
    currency: str
    rows: list[RevenueRow] = field(default_factory=list)

    @property
    def total(self) -> RevenueRow:
        total = RevenueRow(key=None, label="")
        for row in self.rows:
            total.paid += row.paid
            total.refunded += row.refunded
            total.payments += row.payments
            total.refunds += row.refunds
        return total


GROUPS = ("doctor", "consultation_type", "month")


def _bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    zone = ZoneInfo(settings.TIME_ZONE)
    start = datetime.combine(date_from, time.min, tzinfo=zone)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


def revenue_report(
    *,
    date_from: date,
    date_to: date,
    group_by: str = "doctor",
    doctor: User | None = None,
    currency: str = "RUB",
) -> RevenueReport:
    """Money in (payments that succeeded in the period) and out (refunds that succeeded in
    it), by doctor, consultation type or month. Two grouped queries whatever the size."""
    if group_by not in GROUPS:
        raise ValueError(group_by)
    start, end = _bounds(date_from, date_to)
    paid = Payment.objects.filter(
        status=PaymentStatus.SUCCEEDED,
        succeeded_at__gte=start,
        succeeded_at__lt=end,
        currency=currency,
    )
    refunded = Refund.objects.filter(
        status=RefundStatus.SUCCEEDED,
        succeeded_at__gte=start,
        succeeded_at__lt=end,
        payment__currency=currency,
    )
    if doctor is not None:
        paid = paid.filter(doctor=doctor)
        refunded = refunded.filter(payment__doctor=doctor)
    if group_by == "month":
        zone = ZoneInfo(settings.TIME_ZONE)
        paid_rows = paid.annotate(k=TruncMonth("succeeded_at", tzinfo=zone)).values("k")
        refund_rows = refunded.annotate(k=TruncMonth("succeeded_at", tzinfo=zone)).values("k")
    else:
        column = "doctor_id" if group_by == "doctor" else "consultation_type_id"
        paid_rows = paid.values(k=F(column))
        refund_rows = refunded.values(k=F(f"payment__{column}"))
    rows: dict[Any, RevenueRow] = defaultdict(lambda: RevenueRow(key=None, label=""))
    for item in paid_rows.annotate(s=Sum("amount"), n=Count("id")).order_by():
        row = rows[item["k"]]
        row.key, row.paid, row.payments = item["k"], item["s"] or ZERO, item["n"]
    for item in refund_rows.annotate(s=Sum("amount"), n=Count("id")).order_by():
        row = rows[item["k"]]
        row.key, row.refunded, row.refunds = item["k"], item["s"] or ZERO, item["n"]
    report = RevenueReport(date_from, date_to, group_by, currency, list(rows.values()))
    _label(report)
    report.rows.sort(key=lambda r: (-r.net, r.label))
    if group_by == "month":
        report.rows.sort(key=lambda r: r.key or datetime.min.replace(tzinfo=ZoneInfo("UTC")))
    return report


def _label(report: RevenueReport) -> None:
    from django.utils import formats
    from django.utils.translation import gettext as _

    from scheduling.models import ConsultationType

    keys = [row.key for row in report.rows if row.key is not None]
    if report.group_by == "doctor":
        names = {
            u.pk: u.display_name()
            for u in User.objects.filter(pk__in=keys).select_related("staff_profile")
        }
    elif report.group_by == "consultation_type":
        names = {c.pk: c.name for c in ConsultationType.objects.filter(pk__in=keys)}
    else:
        names = {k: formats.date_format(k, "F Y") for k in keys}
    for row in report.rows:
        row.label = names.get(row.key, "") if row.key is not None else _("Not assigned")
