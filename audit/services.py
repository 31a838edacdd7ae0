"""The one entry point for recording access: `audit_record`; and the break-glass review.

Call `audit_record` inside the service's transaction, after the writes it records, so the
record and the change commit together. Writers are serialised by a transaction-level
advisory lock so every row links to the one before it (see
docs/adr/0006-audit-hash-chain.md); the lock is held until the caller's transaction ends,
so keep that short and take other row locks before recording.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.chain import GENESIS_HASH, link_hash, row_of
from audit.context import current_context
from audit.models import AuditAction, AuditEvent, BreakGlassReview, ReviewOutcome
from audit.selectors import is_audit_admin

# One fixed key for the whole chain: b"audit_ch" read as a signed 64-bit integer.
CHAIN_LOCK_KEY = int.from_bytes(b"audit_ch", "big", signed=True)


def _clean_ip(value: str | None) -> str | None:
    """The address as the inet column gives it back, or None if it is not an address
    (a garbled X-Forwarded-For must not turn an audited request into a 500)."""
    if not value:
        return None
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    return AuditEvent._meta.get_field("ip_address").to_python(value.strip())


def _clean_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    # What jsonb will hold: plain JSON (dates, UUIDs, decimals as strings; keys as strings).
    return json.loads(json.dumps(detail or {}, cls=DjangoJSONEncoder))


def _atomic_unless_in_transaction() -> contextlib.AbstractContextManager[Any]:
    # Inside the caller's transaction no savepoint is needed: if the insert fails, the
    # caller's transaction fails with it, which is what we want.
    if transaction.get_connection().in_atomic_block:
        return contextlib.nullcontext()
    return transaction.atomic()


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
    break_glass: bool = False,
) -> AuditEvent:
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    if break_glass and not reason.strip():
        raise ValueError("A break-glass access must give a reason.")
    context = current_context()
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    event = AuditEvent(
        actor=actor if is_user else None,
        actor_role=getattr(actor, "role", "") if is_user else "",
        action=str(action),
        object_type=object_type,
        object_id=str(object_id or ""),
        patient=patient,
        request_id=context.request_id,
        ip_address=_clean_ip(context.ip_address),
        user_agent=context.user_agent,
        reason=reason,
        detail=_clean_detail(detail),
        break_glass=break_glass,
    )
    with _atomic_unless_in_transaction():
        # Held to the end of the transaction: the next writer waits here, and then (read
        # committed: a fresh snapshot per statement) sees this row as the last one.
        with transaction.get_connection().cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        event.seq, event.prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        # Taken under the lock, so time order and chain order agree on one clock.
        event.occurred_at = timezone.now()
        event.hash = link_hash(event.prev_hash, row_of(event))
        event.save(force_insert=True)
    return event


def break_glass_review_validate(
    *, by: Any, event: AuditEvent, outcome: ReviewOutcome | str, note: str = ""
) -> None:
    """The rules for a review, also used by the admin form to show errors in place."""
    if not is_audit_admin(by):
        raise PermissionDenied(_("Only administrators review break-glass accesses."))
    if event.actor_id is not None and event.actor_id == by.pk:
        raise PermissionDenied(_("Nobody reviews their own break-glass access."))
    errors: dict[str, str] = {}
    if not event.break_glass:
        errors["event"] = _("Only break-glass accesses are reviewed.")
    if outcome not in ReviewOutcome.values:
        errors["outcome"] = _("Choose justified or unjustified.")
    elif outcome == ReviewOutcome.UNJUSTIFIED and not note.strip():
        errors["note"] = _("Say why the access was not justified.")
    if errors:
        raise ValidationError(errors)


def break_glass_review(
    *, by: Any, event: AuditEvent, outcome: ReviewOutcome | str, note: str = ""
) -> BreakGlassReview:
    """An administrator records whether a break-glass access was justified. Reviews are
    rows of their own (events never change); the newest review of an event counts."""
    break_glass_review_validate(by=by, event=event, outcome=outcome, note=note)
    with transaction.atomic():
        review = BreakGlassReview.objects.create(
            event=event, reviewed_by=by, outcome=str(outcome), note=note.strip()
        )
        audit_record(
            actor=by,
            action=AuditAction.REVIEW,
            obj=review,
            patient=event.patient,
            detail={"event_seq": event.seq, "outcome": str(outcome)},
        )
    return review
