"""Admin: read-only views of delivery state; rows belong to a patient, so views are
audited (DESIGN.md rule 4)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from clinic.admin_audit import AuditedAdminMixin
from notifications.models import ActionLink, Message, NotificationPreference, Reminder


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Reminder)
class ReminderAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    list_display = ["id", "appointment_id", "kind", "channel", "state", "due_at", "sent_at"]
    list_filter = ["state", "channel", "kind"]
    exclude = ["appointment"]
    readonly_fields = [
        "appointment_id",
        "kind",
        "channel",
        "appointment_starts_at",
        "due_at",
        "state",
        "attempts",
        "last_error",
        "queued_at",
        "claimed_at",
        "sent_at",
        "sent_channel",
        "provider_message_id",
    ]

    def patient_of(self, obj: Reminder) -> Any:
        return obj.appointment.patient.user


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    list_display = ["id", "user_id", "email_enabled", "sms_enabled", "language"]
    exclude = ["user"]
    readonly_fields = ["user_id", "email_enabled", "sms_enabled", "language"]

    def patient_of(self, obj: NotificationPreference) -> Any:
        return obj.user


@admin.register(Message)
class MessageAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    list_display = ["id", "user_id", "event", "channel", "state", "due_at", "sent_at"]
    list_filter = ["state", "channel", "event"]
    # The link may be a receipt's address: shown to nobody here.
    exclude = ["user", "link"]
    readonly_fields = [
        "user_id",
        "event",
        "object_type",
        "object_id",
        "dedupe_key",
        "channel",
        "due_at",
        "state",
        "attempts",
        "last_error",
        "queued_at",
        "claimed_at",
        "sent_at",
        "sent_channel",
        "provider_message_id",
    ]

    def patient_of(self, obj: Message) -> Any:
        return obj.user


@admin.register(ActionLink)
class ActionLinkAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    list_display = ["id", "appointment_id", "action", "expires_at", "used_at"]
    list_filter = ["action"]
    # The token's hash is of no use to a person and none of their business.
    exclude = ["appointment", "token_hash"]
    readonly_fields = [
        "appointment_id",
        "action",
        "group",
        "appointment_starts_at",
        "expires_at",
        "used_at",
        "created_at",
    ]

    def patient_of(self, obj: ActionLink) -> Any:
        return obj.appointment.patient.user
