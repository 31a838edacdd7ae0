"""Authentication events from Django and allauth, recorded in the audit trail.

Django and allauth announce logins and MFA changes only through signals, so these
receivers are the adapter between them and `audit_record`; they hold no business logic.
"""

from __future__ import annotations

from typing import Any

from allauth.mfa import signals as mfa_signals
from django.contrib.auth import signals as auth_signals

from audit.models import AuditAction
from audit.services import audit_record


def _on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(actor=user, action=AuditAction.LOGIN, obj=user)


def _on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_record(actor=user, action=AuditAction.LOGOUT, obj=user)


def _on_login_failed(sender: Any, credentials: Any, request: Any = None, **kwargs: Any) -> None:
    # The attempted address is personal data and may not even be a user: not stored.
    audit_record(actor=None, action=AuditAction.LOGIN_FAILED, object_type="accounts.user")


def _on_authenticator(event: str) -> Any:
    def receiver(sender: Any, request: Any, user: Any, authenticator: Any, **kwargs: Any) -> None:
        audit_record(
            actor=user,
            action=AuditAction.MFA,
            obj=authenticator,
            detail={"event": event, "type": authenticator.type},
        )

    return receiver


_receivers: list[Any] = []


def connect() -> None:
    auth_signals.user_logged_in.connect(_on_login, dispatch_uid="audit_login")
    auth_signals.user_logged_out.connect(_on_logout, dispatch_uid="audit_logout")
    auth_signals.user_login_failed.connect(_on_login_failed, dispatch_uid="audit_login_failed")
    for name in (
        "authenticator_added",
        "authenticator_removed",
        "authenticator_reset",
        "authenticator_used",
        "authentication_failed",
    ):
        receiver = _on_authenticator(name)
        _receivers.append(receiver)
        getattr(mfa_signals, name).connect(receiver, dispatch_uid=f"audit_{name}")
