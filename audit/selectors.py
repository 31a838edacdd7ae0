"""Reads of the audit trail: a patient's access log and the break-glass review queue.

`audit` imports no other app, so the one role check it needs (`is_audit_admin`) lives
here rather than in accounts.policies; it compares the role by its stored value.
"""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from audit.models import AuditEvent, BreakGlassReview

ADMIN_ROLE = "admin"


def is_audit_admin(user: Any) -> bool:
    """Administrators (and superusers) review break-glass accesses."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if not getattr(user, "is_active", False):
        return False
    return bool(getattr(user, "is_superuser", False) or getattr(user, "role", "") == ADMIN_ROLE)


def access_log_for_patient(user: Any) -> QuerySet[AuditEvent]:
    """Who opened this patient's data: events about them done by someone else, newest
    first. Events without an actor (failed logins, system jobs) are left out. Names come
    from the actors' staff profiles, not from the log."""
    if user is None or not getattr(user, "is_authenticated", False):
        return AuditEvent.objects.none()
    return (
        AuditEvent.objects.filter(patient=user, actor__isnull=False)
        .exclude(actor=user)
        .select_related("actor__staff_profile")
        .order_by("-occurred_at", "-seq")
    )


def with_review_outcome(queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    """Annotate each event with its newest review's outcome (`review_outcome`) and time."""
    newest = BreakGlassReview.objects.filter(event=OuterRef("pk")).order_by("-reviewed_at", "-id")
    return queryset.annotate(
        review_outcome=Subquery(newest.values("outcome")[:1]),
        reviewed_at=Subquery(newest.values("reviewed_at")[:1]),
    )


def break_glass_events(user: Any) -> QuerySet[AuditEvent]:
    """Break-glass accesses for an administrator's review, newest first, each with the
    outcome of its newest review (None while unreviewed). Nobody else sees them."""
    if not is_audit_admin(user):
        return AuditEvent.objects.none()
    return with_review_outcome(
        AuditEvent.objects.filter(break_glass=True).order_by("-occurred_at", "-seq")
    )
