"""The one entry point for recording access: `audit_record`.

Call it inside the service's transaction so the record and the change commit together.
(The hash chain and the append-only trigger arrive with the security-core issue.)
"""

from __future__ import annotations

from typing import Any

from django.db import models

from audit.context import current_context
from audit.models import AuditAction, AuditEvent


def audit_record(
    *,
    actor: Any | None,
    action: AuditAction | str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    patient: Any | None = None,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    context = current_context()
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        actor=actor if is_user else None,
        actor_role=getattr(actor, "role", "") if is_user else "",
        action=str(action),
        object_type=object_type,
        object_id=str(object_id or ""),
        patient=patient,
        request_id=context.request_id,
        ip_address=context.ip_address,
        user_agent=context.user_agent,
        reason=reason,
        detail=detail or {},
    )
