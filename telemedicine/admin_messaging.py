"""Django admin for secure messaging (imported by telemedicine/admin.py). Every model is
registered, read-only and audited (clinic.admin_audit). Administrators see no clinical
data (accounts.policies): a thread's subject and the label of the record it is about, a
message's text and an attached file are not shown; topics, states, routing, times and
ids are. Changes go through telemedicine.services_messaging."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from clinic.admin_audit import AuditedAdminMixin
from telemedicine.models import MessageAttachment, Thread, ThreadMessage, ThreadRead


class _ReadOnly:
    """Viewable, never added, edited or deleted in the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Thread)
class ThreadAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = (
        "id",
        "topic",
        "state",
        "team",
        "doctor",
        "assigned_to",
        "created_at",
        "last_message_at",
        "patient",
    )
    list_filter = ("topic", "state", "team", "about_kind")
    list_select_related = ("patient", "doctor", "assigned_to")
    date_hierarchy = "created_at"
    exclude = ("subject", "about_label")
    readonly_fields = ("public_id",)

    def patient_of(self, obj: Thread) -> Any:
        return obj.patient.user


@admin.register(ThreadMessage)
class ThreadMessageAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = ("id", "thread", "from_patient", "author", "created_at")
    list_filter = ("from_patient",)
    list_select_related = ("thread", "author")
    date_hierarchy = "created_at"
    exclude = ("body",)

    def patient_of(self, obj: ThreadMessage) -> Any:
        return obj.thread.patient.user


@admin.register(MessageAttachment)
class MessageAttachmentAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = ("id", "message", "content_type", "size", "created_at")
    list_filter = ("content_type",)
    list_select_related = ("message",)
    date_hierarchy = "created_at"
    exclude = ("file",)
    readonly_fields = ("public_id",)

    def patient_of(self, obj: MessageAttachment) -> Any:
        return obj.message.thread.patient.user


@admin.register(ThreadRead)
class ThreadReadAdmin(AuditedAdminMixin, _ReadOnly, admin.ModelAdmin):
    list_display = ("id", "thread", "user", "read_at")
    list_select_related = ("thread", "user")

    def patient_of(self, obj: ThreadRead) -> Any:
        return obj.thread.patient.user
