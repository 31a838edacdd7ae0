"""The access log. Rows are only ever added, through `audit.services.audit_record`.

Each row carries `seq` (1, 2, 3, … without gaps), the previous row's hash and its own
hash over a canonical form of its fields (`audit.chain`), so any edit, removal or
insertion shows up in `manage.py verify_audit_chain`. A database trigger rejects UPDATE
and DELETE, from Django and from raw SQL alike. See docs/adr/0006-audit-hash-chain.md.
"""

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AuditAction(models.TextChoices):
    VIEW = "view", _("View")
    DOWNLOAD = "download", _("Download")
    EXPORT = "export", _("Export")
    CREATE = "create", _("Create")
    CHANGE = "change", _("Change")
    DELETE = "delete", _("Delete")
    LOGIN = "login", _("Login")
    LOGOUT = "logout", _("Logout")
    LOGIN_FAILED = "login_failed", _("Failed login")
    MFA = "mfa", _("MFA")
    DENIED = "denied", _("Permission denied")
    ROLE_CHANGE = "role_change", _("Role change")
    BREAK_GLASS = "break_glass", _("Break-glass access")
    REVIEW = "review", _("Review")


class AuditEvent(models.Model):
    seq = models.BigIntegerField(_("sequence number"), unique=True, editable=False)
    # Set in Python by audit_record before hashing (it is part of the hash).
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("actor"),
    )
    # The actor's role at the time; names are not stored (no personal data in the log).
    actor_role = models.CharField(_("actor role"), max_length=32, blank=True)
    action = models.CharField(_("action"), max_length=32, choices=AuditAction.choices)
    object_type = models.CharField(_("object type"), max_length=100, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    # The patient the data belongs to (a user id), so "who opened my record" is one query.
    patient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("patient"),
    )
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=300, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    break_glass = models.BooleanField(_("break-glass"), default=False)
    prev_hash = models.CharField(_("previous hash"), max_length=64, editable=False)
    hash = models.CharField(_("hash"), max_length=64, editable=False)

    class Meta:
        ordering = ["-seq"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [
            models.Index(fields=["patient", "-occurred_at"]),
            # Break-glass accesses are few and reviewed newest first: a partial index.
            models.Index(
                fields=["-occurred_at"],
                condition=Q(break_glass=True),
                name="audit_break_glass_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(seq__gte=1), name="audit_seq_positive"),
            models.CheckConstraint(
                condition=Q(hash__regex=r"^[0-9a-f]{64}$") & Q(prev_hash__regex=r"^[0-9a-f]{64}$"),
                name="audit_hashes_hex_sha256",
            ),
            models.CheckConstraint(
                condition=~Q(break_glass=True) | Q(reason__gt=""),
                name="audit_break_glass_has_reason",
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return (
            f"#{self.seq} {self.occurred_at:%Y-%m-%d %H:%M} {self.action} "
            f"{self.object_type}:{self.object_id}"
        )


class ReviewOutcome(models.TextChoices):
    JUSTIFIED = "justified", _("Justified")
    UNJUSTIFIED = "unjustified", _("Unjustified")


class BreakGlassReview(models.Model):
    """An administrator's verdict on one break-glass access. A separate row because the
    event itself never changes; also append-only, the newest review of an event wins."""

    event = models.ForeignKey(
        AuditEvent,
        on_delete=models.PROTECT,
        related_name="reviews",
        limit_choices_to={"break_glass": True},
        verbose_name=_("event"),
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("reviewed by"),
    )
    reviewed_at = models.DateTimeField(_("reviewed at"), default=timezone.now)
    outcome = models.CharField(_("outcome"), max_length=16, choices=ReviewOutcome.choices)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["-reviewed_at", "-id"]
        verbose_name = _("break-glass review")
        verbose_name_plural = _("break-glass reviews")
        triggers = [
            pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} (event #{self.event_id})"
