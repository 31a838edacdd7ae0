"""Admin of HL7 v2 inbound messages (registered by mis.admin).

The list shows what arrived and what became of it — type, sender, control id, state,
reason, reply — filterable by state, type and reason; never the text. The message text
(personal and medical data) is shown on a message's own page only, and opening that page
is audited with the patient (clinic.admin_audit), as are the list pages. Messages are
never added, edited or deleted here; a rejected one can be processed again (after its
patient, doctor or test type was set up) with the "Process again" action.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from accounts import policies
from clinic.admin_audit import AuditedAdminMixin
from mis.models import Hl7Message, Hl7State
from mis.services_hl7 import hl7_reprocess


@admin.register(Hl7Message)
class Hl7MessageAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "received_at",
        "type_label",
        "control_id",
        "sending_facility",
        "state",
        "reason_code",
        "ack_code",
        "source",
        "produced",
    )
    list_filter = ("state", "message_type", "trigger_event", "reason_code", "ack_code", "source")
    list_select_related = ("patient",)
    search_fields = ("control_id",)
    date_hierarchy = "received_at"
    actions = ("reprocess",)
    fields = (
        ("control_id", "message_type", "trigger_event", "version"),
        ("sending_application", "sending_facility"),
        ("source", "peer", "filename", "size_bytes"),
        ("received_at", "processed_at", "attempts"),
        ("state", "reason_code"),
        "reason",
        ("produced_kind", "produced_id", "produced_ids"),
        ("patient", "duplicate_of"),
        "ack_code",
        "ack_display",
        "message_display",
    )

    @admin.display(description=_("type"), ordering="message_type")
    def type_label(self, obj: Hl7Message) -> str:
        return obj.type_label

    @admin.display(description=_("produced"))
    def produced(self, obj: Hl7Message) -> str:
        if not obj.produced_kind:
            return "—"
        return f"{obj.produced_kind} {', '.join(map(str, obj.produced_ids[:5]))}"

    @admin.display(description=_("ACK sent"))
    def ack_display(self, obj: Hl7Message) -> str:
        return format_html("<pre>{}</pre>", obj.ack_text.replace("\r", "\n"))

    @admin.display(description=_("message text"))
    def message_display(self, obj: Hl7Message) -> str:
        if obj.duplicate_of_id is not None and not obj.raw:
            return _("Same text as message #%(id)s.") % {"id": obj.duplicate_of_id}
        return format_html("<pre>{}</pre>", obj.raw.replace("\r", "\n"))

    def patient_of(self, obj: Hl7Message) -> Any:
        return obj.patient.user if obj.patient_id else None

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        flat: list[str] = []
        for item in self.fields:
            flat += list(item) if isinstance(item, tuple) else [item]
        return flat

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return policies.can_reprocess_hl7_message(request.user)

    @admin.action(description=_("Process again (rejected messages)"), permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[Hl7Message]) -> None:
        applied = rejected = 0
        for row in queryset.filter(state=Hl7State.REJECTED, duplicate_of__isnull=True):
            try:
                outcome = hl7_reprocess(by=request.user, message=row)
            except (ValidationError, PermissionDenied):
                rejected += 1
                continue
            if outcome.state == Hl7State.APPLIED:
                applied += 1
            else:
                rejected += 1
        self.message_user(
            request,
            _("Processed again: %(applied)d applied, %(rejected)d still rejected.")
            % {"applied": applied, "rejected": rejected},
            messages.WARNING if rejected else messages.SUCCESS,
        )
