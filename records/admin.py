"""Django admin for records. Every model is registered. Test types (a catalogue, no
personal data) are edited here; visits, notes, diagnoses, reports and observations are
medical data: read-only, their views audited (clinic.admin_audit), and their clinical
content (values, flags, comments, summaries, diagnoses, notes) is not shown at all —
administrators see no clinical data (accounts.policies). Changes go through
records.services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from clinic.admin_audit import AuditedAdminMixin
from records.models import (
    LabReport,
    Observation,
    TestType,
    Visit,
    VisitDiagnosis,
    VisitNote,
)


class ReadOnlyMixin:
    """Viewable, never added, edited or deleted in the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TestType)
class TestTypeAdmin(admin.ModelAdmin):
    list_display = ("code", "name_en", "name_ru", "loinc_code", "release_policy", "active")
    list_filter = ("release_policy", "active")
    search_fields = ("code", "name_en", "name_ru", "loinc_code")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Reports keep pointing at their test type for the 25-year retention.
        return False


CLINICAL_VALUES = (
    "value_quantity",
    "value_text",
    "value_code",
    "value_display",
    "interpretation",
    "note",
)


class ObservationInline(ReadOnlyMixin, admin.TabularInline):
    model = Observation
    extra = 0
    fields = ("sort_order", "loinc_code", "name", "value_type", "unit", "status")


@admin.register(LabReport)
class LabReportAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "test_type",
        "status",
        "issued_at",
        "review_state",
        "released_to_patient_at",
        "patient",
    )
    list_filter = ("status", "review_state", "test_type")
    list_select_related = ("test_type", "patient")
    date_hierarchy = "issued_at"
    exclude = ("review_comment", "conclusion", "performer")
    inlines = (ObservationInline,)

    def patient_of(self, obj: LabReport) -> Any:
        return obj.patient.user


@admin.register(Observation)
class ObservationAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "report", "loinc_code", "name", "status")
    list_filter = ("status",)
    list_select_related = ("report",)
    search_fields = ("loinc_code",)
    exclude = CLINICAL_VALUES

    def patient_of(self, obj: Observation) -> Any:
        return obj.report.patient.user


@admin.register(Visit)
class VisitAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "started_at", "doctor", "location", "released_at", "patient")
    list_filter = ("location",)
    list_select_related = ("doctor", "location", "patient")
    date_hierarchy = "started_at"
    exclude = ("summary",)

    def patient_of(self, obj: Visit) -> Any:
        return obj.patient.user


@admin.register(VisitDiagnosis)
class VisitDiagnosisAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "visit", "kind", "sort_order")
    list_filter = ("kind",)
    exclude = ("code", "text")

    def patient_of(self, obj: VisitDiagnosis) -> Any:
        return obj.visit.patient.user


@admin.register(VisitNote)
class VisitNoteAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "visit", "author", "internal", "created_at")
    list_filter = ("internal",)
    exclude = ("text",)

    def patient_of(self, obj: VisitNote) -> Any:
        return obj.visit.patient.user


# The other parts of records register their models in their own modules.
from records import admin_care, admin_data_rights, admin_documents  # noqa: E402, F401
