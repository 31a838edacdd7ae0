"""Helpers for the audit tests: write events, tamper with rows behind the trigger."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from unittest import mock

import pgtrigger
import pytest

from audit.models import AuditAction, AuditEvent
from audit.services import audit_record

APPEND_ONLY = "audit.AuditEvent:append_only"


def write_events(n: int, **kwargs: object) -> list[AuditEvent]:
    kwargs.setdefault("actor", None)
    kwargs.setdefault("action", AuditAction.VIEW)
    return [
        audit_record(object_type="records.labresult", object_id=i, **kwargs)  # type: ignore[arg-type]
        for i in range(n)
    ]


@contextlib.contextmanager
def frozen_audit_clock(when: dt.datetime) -> Iterator[None]:
    """audit_record stamps rows with this time (only audit's clock, nobody else's)."""
    with mock.patch("audit.services.timezone", SimpleNamespace(now=lambda: when)):
        yield


@contextlib.contextmanager
def trigger_off() -> Iterator[None]:
    """Let Django-issued SQL (ORM and connection.cursor()) past the append-only trigger."""
    with pgtrigger.ignore(APPEND_ONLY):
        yield


@pytest.fixture
def events(db) -> list[AuditEvent]:
    write_events(10)
    return list(AuditEvent.objects.order_by("seq"))
