"""The fiscal data operator adapter: what the portal asks of an operator (ATOL Online,
or any other that registers FZ-54 receipts on a cash register in the cloud), and the
two kinds of failure it may answer with.

An operator is asked two things: `register` a receipt document (idempotent by the
document's `external_id`: registering the same id twice answers with the first
registration) and `report` on a registration (wait, done with the fiscal requisites, or
fail). Everything provider-specific (URLs, tokens, JSON shapes, error codes) stays in
the provider's module.

Errors:
- `TemporaryError`: try again later (network, timeouts, 5xx, an expired token that could
  not be renewed, the operator's own configuration trouble). The receipt keeps its state
  and is retried with a growing delay, never given up.
- `PermanentError`: the operator refused the document for good (validation). The
  receipt is marked failed and waits for a person.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable


class FiscalError(Exception):
    """An operator's failure: `code` is short and safe to store (no personal data),
    `text` the operator's explanation."""

    def __init__(self, code: str, text: str = "") -> None:
        super().__init__(f"{code}: {text}" if text else code)
        self.code = code
        self.text = text

    @property
    def summary(self) -> str:
        return str(self)


class TemporaryError(FiscalError):
    """Try again later: nothing was decided about the document."""


class PermanentError(FiscalError):
    """Refused for good: sending the same document again cannot succeed."""


class DocumentKind(enum.StrEnum):
    SELL = "sell"  # «Приход»
    SELL_REFUND = "sell_refund"  # «Возврат прихода»


class ReportState(enum.StrEnum):
    WAIT = "wait"
    DONE = "done"
    FAIL = "fail"


@dataclass(frozen=True)
class ReceiptLine:
    """One line of a receipt. `name` is what the receipt prints: never anything medical."""

    name: str
    price: Decimal
    quantity: Decimal
    amount: Decimal
    unit: str = ""  # measurement unit as printed


@dataclass(frozen=True)
class ReceiptDocument:
    """A receipt as the portal describes it, whatever the operator.

    Paid electronically (by card through the payment provider), in full, for a service.
    `client_email` or `client_phone` is where the operator's OFD sends the electronic
    receipt (FZ-54 requires one of them for a receipt without paper).
    """

    external_id: str
    kind: DocumentKind
    created_at: datetime
    lines: tuple[ReceiptLine, ...]
    total: Decimal
    client_email: str = ""
    client_phone: str = ""


@dataclass(frozen=True)
class Requisites:
    """What the operator returns once the receipt is on a fiscal drive (FZ-54)."""

    fiscal_receipt_number: str = ""
    shift_number: str = ""
    fiscal_document_number: str = ""
    fiscal_document_attribute: str = ""
    fn_number: str = ""
    ecr_registration_number: str = ""
    registered_at: datetime | None = None
    total: Decimal | None = None
    fns_site: str = ""
    receipt_url: str = ""


@dataclass(frozen=True)
class Registration:
    """The operator took the document: its id there and the state it is in."""

    uuid: str
    state: ReportState = ReportState.WAIT
    duplicate: bool = False  # the operator already had a document with this external_id


@dataclass(frozen=True)
class Report:
    state: ReportState
    requisites: Requisites | None = None
    error: str = ""


@runtime_checkable
class FiscalOperator(Protocol):
    """A fiscal data operator's client. Implementations raise TemporaryError or
    PermanentError, never anything else for a failed exchange, and time out every call."""

    name: str

    def register(self, document: ReceiptDocument) -> Registration: ...

    def report(self, uuid: str) -> Report: ...
