"""Fiscal receipts (FZ-54) through a fiscal data operator, behind one adapter
(`base.FiscalOperator`). One provider is implemented: ATOL Online (`atol`).

`FISCAL_PROVIDER` chooses it; empty turns sending off (receipts are still created and
stay pending until a provider is configured). See docs/adr/0010.
"""

from __future__ import annotations

from django.conf import settings

from payments.fiscal.base import (
    DocumentKind,
    FiscalError,
    FiscalOperator,
    PermanentError,
    ReceiptDocument,
    ReceiptLine,
    Registration,
    Report,
    ReportState,
    Requisites,
    TemporaryError,
)

PROVIDERS = ("atol",)

__all__ = [
    "PROVIDERS",
    "DocumentKind",
    "FiscalError",
    "FiscalOperator",
    "PermanentError",
    "ReceiptDocument",
    "ReceiptLine",
    "Registration",
    "Report",
    "ReportState",
    "Requisites",
    "TemporaryError",
    "enabled_provider",
    "get_operator",
]


def enabled_provider() -> str:
    """The configured provider's name, or "" when sending is off."""
    name = (getattr(settings, "FISCAL_PROVIDER", "") or "").strip().lower()
    if name and name not in PROVIDERS:
        raise ValueError(f"unknown FISCAL_PROVIDER {name!r}; known: {', '.join(PROVIDERS)}")
    return name


def get_operator(name: str | None = None) -> FiscalOperator | None:
    """The operator client for `name` (default: the configured one); None when off."""
    name = enabled_provider() if name is None else name
    if not name:
        return None
    if name == "atol":
        from payments.fiscal.atol import AtolOnline

        return AtolOnline.from_settings()
    raise ValueError(f"unknown fiscal provider {name!r}")
