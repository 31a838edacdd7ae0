"""Django admin for telemedicine. Read-only (changes go through the services), every
list and change view audited with the patient concerned (clinic.admin_audit). Room names
are not shown: knowing one is not enough to join (tokens are minted by the server only),
but it is still nobody's business.

Secure messaging's models are registered in telemedicine/admin_messaging.py and the
consultation screen's in telemedicine/admin_consult.py, imported at the end.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from clinic.admin_audit import AuditedAdminMixin
from telemedicine.models import Consultation, LiveKitWebhookEvent, RecordingConsent


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RecordingConsentInline(_ReadOnly, admin.TabularInline):
    model = RecordingConsent
    extra = 0
    fields = ("party", "user", "given_at", "withdrawn_at")


@admin.register(Consultation)
class ConsultationAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = (
        "id",
        "appointment",
        "state",
        "patient_joined_at",
        "doctor_joined_at",
        "started_at",
        "ended_at",
        "end_reason",
    )
    list_filter = ("state", "end_reason")
    list_select_related = ("appointment",)
    date_hierarchy = "created_at"
    exclude = ("room_name",)
    inlines = (RecordingConsentInline,)

    def patient_of(self, obj: Consultation) -> Any:
        return obj.appointment.patient.user


@admin.register(RecordingConsent)
class RecordingConsentAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = ("id", "consultation", "party", "user", "given_at", "withdrawn_at")
    list_filter = ("party",)
    list_select_related = ("consultation", "user")

    def patient_of(self, obj: RecordingConsent) -> Any:
        return obj.consultation.appointment.patient.user


@admin.register(LiveKitWebhookEvent)
class LiveKitWebhookEventAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = (
        "id",
        "event",
        "event_id",
        "participant_identity",
        "consultation",
        "applied",
        "occurred_at",
        "received_at",
    )
    list_filter = ("event", "applied")
    list_select_related = ("consultation",)
    date_hierarchy = "received_at"
    exclude = ("room_name",)

    def patient_of(self, obj: LiveKitWebhookEvent) -> Any:
        consultation = obj.consultation
        return consultation.appointment.patient.user if consultation is not None else None


def _register_part(module: str) -> None:
    """Import another part's admin module, if that part has one (a missing module is
    fine; an error inside an existing one is not hidden)."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise


# The other parts of telemedicine register their own models.
_register_part("telemedicine.admin_messaging")
_register_part("telemedicine.admin_consult")
