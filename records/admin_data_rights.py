"""Django admin for the patients' data requests (exports and deletions): read-only and
audited (clinic.admin_audit). Administrators see the kind, state, times and the outcome
(which holds no personal data), never the prepared export file. A deletion is the
patient's own act (records.services_data_rights); nothing is changed here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from clinic.admin_audit import AuditedAdminMixin
from records.admin import ReadOnlyMixin
from records.models import DataRequest


@admin.register(DataRequest)
class DataRequestAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "kind", "status", "requested_at", "completed_at", "attempts", "patient")
    list_filter = ("kind", "status")
    list_select_related = ("patient",)
    date_hierarchy = "requested_at"
    exclude = ("file", "sha256")
    readonly_fields = ("public_id",)

    def patient_of(self, obj: DataRequest) -> Any:
        return obj.patient.user
