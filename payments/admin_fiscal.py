"""Fiscal receipts in Django admin: viewable, never edited by hand; a "retry now" action
sends failed (or waiting) receipts to the operator again through the service.

Registered from here; payments/admin.py imports this module.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clinic.admin_audit import AuditedAdminMixin
from payments.models import FiscalReceipt
from payments.services_fiscal import receipt_retry


@admin.register(FiscalReceipt)
class FiscalReceiptAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "kind",
        "amount",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "confirmed_at",
    )
    list_filter = ("state", "kind", "provider")
    date_hierarchy = "created_at"
    search_fields = ("public_id", "external_id", "provider_uuid", "fiscal_document_number")
    readonly_fields = [f.name for f in FiscalReceipt._meta.fields]
    actions = ["retry_now"]
    list_select_related = ("payment",)

    def patient_of(self, obj: FiscalReceipt) -> Any:
        return obj.payment.patient.user

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description=gettext_lazy("Send to the fiscal operator again now"))
    def retry_now(self, request: HttpRequest, queryset: QuerySet[FiscalReceipt]) -> None:
        done = skipped = 0
        for receipt in queryset.order_by("pk"):
            try:
                receipt_retry(by=request.user, receipt=receipt)
            except PermissionDenied:
                self.message_user(
                    request, _("Only administrators send receipts again."), messages.ERROR
                )
                return
            except ValidationError:
                skipped += 1
            else:
                done += 1
        if done:
            self.message_user(
                request, _("Receipts queued for the operator: %(count)s.") % {"count": done}
            )
        if skipped:
            self.message_user(
                request,
                _("Receipts already fiscalised, left as they are: %(count)s.") % {"count": skipped},
                messages.WARNING,
            )
