"""Admin pages of personal or medical data record who opened them (DESIGN.md rule 4).

Use `AuditedModelAdmin` (or the mixin) for every ModelAdmin whose rows carry personal or
medical data: list views are recorded once per page with the ids shown, change views
per object with the patient concerned.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditAction
from audit.services import audit_record


class AuditedAdminMixin:
    def patient_of(self, obj: Any) -> Any:
        """The patient (a user) a row belongs to; override per model."""
        return None

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        response = super().changelist_view(request, extra_context)  # type: ignore[misc]
        changelist = getattr(response, "context_data", {}) or {}
        cl = changelist.get("cl")
        if cl is not None and getattr(response, "status_code", 200) == 200:
            shown = [str(obj.pk) for obj in cl.result_list]
            audit_record(
                actor=request.user,
                action=AuditAction.VIEW,
                object_type=self.model._meta.label_lower,  # type: ignore[attr-defined]
                detail={
                    "via": "admin",
                    "list": True,
                    "ids": shown[:200],
                    "filters": dict(request.GET.items()),
                },
            )
        return response

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        response = super().change_view(request, object_id, *args, **kwargs)  # type: ignore[misc]
        obj = self.get_object(request, object_id)  # type: ignore[attr-defined]
        if obj is not None and getattr(response, "status_code", 200) == 200:
            audit_record(
                actor=request.user,
                action=AuditAction.VIEW,
                obj=obj,
                patient=self.patient_of(obj),
                detail={"via": "admin"},
            )
        return response


class AuditedModelAdmin(AuditedAdminMixin, admin.ModelAdmin):
    pass
