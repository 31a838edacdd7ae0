"""Payments in Django admin: every money row is viewable, none is edited by hand (money
moves only through services: a refund by hand goes through its own audited form), and
the revenue report lives here.

Rows carry the patient, so views are audited like records' (clinic.admin_audit).
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import policies
from audit.models import AuditAction
from audit.services import audit_record
from clinic.admin_audit import AuditedAdminMixin
from payments import selectors, services
from payments.forms import PeriodForm, RefundForm
from payments.models import (
    InsuranceCoverage,
    Invoice,
    Payment,
    PaymentStatus,
    Refund,
    WebhookEvent,
)


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = ("amount", "reason", "status", "provider_refund_id", "requested_by", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "amount",
        "currency",
        "status",
        "refunded_amount",
        "doctor",
        "consultation_type",
        "succeeded_at",
    )
    list_filter = ("status", "currency", "consultation_type")
    date_hierarchy = "created_at"
    search_fields = ("public_id", "provider_payment_id")
    readonly_fields = [f.name for f in Payment._meta.fields]
    inlines = [RefundInline]
    change_form_template = "admin/payments/payment/change_form.html"
    change_list_template = "admin/payments/payment/change_list.html"

    def patient_of(self, obj: Payment) -> Any:
        return obj.patient.user

    def get_urls(self) -> list:
        own = [
            path(
                "<path:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="payments_payment_refund",
            ),
            path(
                "revenue/",
                self.admin_site.admin_view(self.revenue_view),
                name="payments_payment_revenue",
            ),
        ]
        return own + super().get_urls()

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A refund by hand, whole or part, with a reason: through the refund service
        (which checks the amount left and records the request)."""
        payment = get_object_or_404(Payment.objects.select_related("patient__user"), pk=object_id)
        if not policies.can_refund_payment(request.user, payment):
            raise PermissionDenied
        left = payment.refundable_amount
        form = RefundForm(request.POST or None, initial={"amount": left})
        if request.method == "POST" and form.is_valid():
            try:
                services.refund_create(
                    by=request.user,
                    payment=payment,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    note=form.cleaned_data["note"],
                )
            except ValidationError as exc:
                for name, errors in exc.message_dict.items():
                    form.add_error(name if name in form.fields else None, errors)
            except services.PaymentProblem as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("The refund has been sent to the payment provider."))
                return redirect(reverse("admin:payments_payment_change", args=[payment.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Refund a payment"),
            "payment": payment,
            "left": left,
            "form": form,
            "opts": self.model._meta,
        }
        return render(request, "admin/payments/payment/refund.html", context)

    def revenue_view(self, request: HttpRequest) -> HttpResponse:
        if not policies.can_view_revenue_report(request.user):
            raise PermissionDenied
        today = timezone.localdate()
        initial = {"date_from": today.replace(day=1), "date_to": today, "group_by": "doctor"}
        form = PeriodForm(request.GET or initial)
        report = None
        if form.is_valid():
            report = selectors.revenue_report(
                date_from=form.cleaned_data["date_from"],
                date_to=form.cleaned_data["date_to"],
                group_by=form.cleaned_data.get("group_by") or "doctor",
            )
            audit_record(
                actor=request.user,
                action=AuditAction.VIEW,
                object_type="payments.revenue_report",
                detail={"via": "admin", **{k: str(v) for k, v in form.cleaned_data.items()}},
            )
            if request.GET.get("format") == "csv":
                return _revenue_csv(report)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Revenue"),
            "form": form,
            "report": report,
            "opts": self.model._meta,
        }
        return render(request, "admin/payments/payment/revenue.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _revenue_csv(report: selectors.RevenueReport) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    rows = [["group", "payments", "paid", "refunds", "refunded", "net", "currency"]]
    rows += [
        [r.label, r.payments, r.paid, r.refunds, r.refunded, r.net, report.currency]
        for r in report.rows
    ]
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="revenue-{report.group_by}-{report.date_from}-{report.date_to}.csv"'
    )
    return response


@admin.register(Refund)
class RefundAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("public_id", "amount", "reason", "status", "created_at", "succeeded_at")
    list_filter = ("status", "reason")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Refund._meta.fields]

    def patient_of(self, obj: Refund) -> Any:
        return obj.payment.patient.user


@admin.register(Invoice)
class InvoiceAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("number", "amount", "currency", "status", "created_at", "paid_at")
    list_filter = ("status",)
    search_fields = ("number",)
    readonly_fields = [f.name for f in Invoice._meta.fields]
    actions = ["void_invoices"]

    def patient_of(self, obj: Invoice) -> Any:
        return obj.patient.user

    @admin.action(description=gettext_lazy("Cancel the selected unpaid invoices"))
    def void_invoices(self, request: HttpRequest, queryset: Any) -> None:
        done = 0
        for invoice in queryset:
            try:
                services.invoice_void(by=request.user, invoice=invoice)
                done += 1
            except (services.PaymentProblem, PermissionDenied) as exc:
                messages.warning(request, f"{invoice.number}: {exc}")
        if done:
            messages.success(request, _("%(n)d invoices cancelled.") % {"n": done})


@admin.register(InsuranceCoverage)
class InsuranceCoverageAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("appointment", "kind", "captured_at", "checked_at")
    list_filter = ("kind",)
    readonly_fields = [f.name for f in InsuranceCoverage._meta.fields]

    def patient_of(self, obj: InsuranceCoverage) -> Any:
        return obj.appointment.patient.user


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("event_id", "type", "outcome", "deliveries", "received_at")
    list_filter = ("outcome", "type")
    search_fields = ("event_id", "object_id")
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]


__all__ = ["PaymentAdmin", "PaymentStatus"]

# Fiscal receipts' admin (with its "send again" action) lives beside the fiscal code.
if importlib.util.find_spec("payments.admin_fiscal"):
    importlib.import_module("payments.admin_fiscal")
