"""Django admin for prescriptions, renewal requests, intake forms, vaccinations and care
plans. Medical data: read-only (changes go through records.services_care), every list
and change view audited with the patient concerned (clinic.admin_audit), and the
clinical content itself (medications, dosages, pharmacy, notes, answers, vaccines,
conditions, instructions) is not shown — administrators see no clinical data
(accounts.policies). Imported by records/admin.py."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from clinic.admin_audit import AuditedAdminMixin
from records.models import (
    CarePlan,
    IntakeForm,
    Prescription,
    RenewalEvent,
    RenewalRequest,
    Vaccination,
)


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Prescription)
class PrescriptionAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = (
        "id",
        "issued_at",
        "status",
        "is_repeat",
        "repeats_allowed",
        "repeats_used",
        "prescriber",
        "patient",
    )
    list_filter = ("status", "is_repeat")
    list_select_related = ("prescriber", "patient")
    date_hierarchy = "issued_at"
    exclude = ("medication", "dosage", "instructions")

    def patient_of(self, obj: Prescription) -> Any:
        return obj.patient.user


class RenewalEventInline(_ReadOnly, admin.TabularInline):
    model = RenewalEvent
    extra = 0
    fields = ("at", "by", "from_status", "to_status")


@admin.register(RenewalRequest)
class RenewalRequestAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = ("id", "submitted_at", "status", "reviewer", "decided_at", "patient")
    list_filter = ("status",)
    list_select_related = ("reviewer", "patient")
    date_hierarchy = "submitted_at"
    exclude = ("confirmed_dosage", "pharmacy", "notes", "rejection_reason")
    inlines = (RenewalEventInline,)

    def patient_of(self, obj: RenewalRequest) -> Any:
        return obj.patient.user


@admin.register(RenewalEvent)
class RenewalEventAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = ("id", "renewal", "at", "by", "from_status", "to_status")
    list_filter = ("to_status",)
    list_select_related = ("renewal", "by")

    def patient_of(self, obj: RenewalEvent) -> Any:
        return obj.renewal.patient.user


@admin.register(IntakeForm)
class IntakeFormAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = ("id", "appointment", "status", "updated_at", "submitted_at", "reminded_at")
    list_filter = ("status",)
    list_select_related = ("appointment",)
    exclude = ("reason", "symptoms", "allergies", "medications", "history", "family_history")

    def patient_of(self, obj: IntakeForm) -> Any:
        return obj.patient.user


@admin.register(Vaccination)
class VaccinationAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = ("id", "given_on", "dose_number", "recorded_by", "patient")
    list_select_related = ("recorded_by", "patient")
    date_hierarchy = "given_on"
    exclude = ("vaccine", "lot", "notes")

    def patient_of(self, obj: Vaccination) -> Any:
        return obj.patient.user


@admin.register(CarePlan)
class CarePlanAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = ("id", "start_date", "review_date", "active", "doctor", "patient")
    list_filter = ("active",)
    list_select_related = ("doctor", "patient")
    exclude = ("condition", "instructions")

    def patient_of(self, obj: CarePlan) -> Any:
        return obj.patient.user
