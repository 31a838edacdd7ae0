"""Fiscal receipts (FZ-54): one for every succeeded payment ("sell") and every succeeded
refund ("sell_refund"), sent to the fiscal data operator until it confirms.

Rows, not messages (DESIGN.md rule 1): a `FiscalReceipt` is created in the transaction
that records the payment or refund, and its send task is enqueued when that commits.
The task claims the row under `SELECT ... FOR UPDATE SKIP LOCKED` and commits the claim
(one more attempt, `next_attempt_at` pushed out by CLAIM_LEASE) before it talks to the
operator, so two workers never work on one receipt at once, and a worker that dies
leaves a row the sweep finds again once the lease has run out.

What a try does depends on the state:
- pending: register the document (the operator keeps one per `external_id`, so a
  document registered by a worker that died before recording it is answered with the
  same uuid, never fiscalised twice) -> waiting;
- waiting: ask for the report -> still waiting (poll again soon), done (requisites and
  the receipt's link stored; the patient is emailed the link, in the same transaction),
  or failed.
Temporary errors (network, 5xx, tokens, the operator's own trouble) push the next try
out exponentially, 30 s up to 1 h, and never give up: the law wants the receipt, and
the operator will come back. A refusal for good (the document failed validation, or
the cash register failed it) marks the receipt failed for a person to look at
(`receipt_retry`, the admin's "retry now").

Receipts carry no medical content: one line, a neutral name ("Medical services", in
Russian), never the consultation type, specialty or doctor.

`FISCAL_PROVIDER=""` turns sending off: receipts are still created and stay pending.
Audited: creation, registration, done, failed, retries by a person (changes of a money
record); the retries after a temporary error are bookkeeping and are not.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from accounts import policies
from audit.models import AuditAction
from audit.services import audit_record
from notifications import services as notification_services
from payments.fiscal import (
    DocumentKind,
    FiscalOperator,
    PermanentError,
    ReceiptDocument,
    ReceiptLine,
    Registration,
    Report,
    ReportState,
    Requisites,
    TemporaryError,
    enabled_provider,
    get_operator,
)
from payments.models import (
    FiscalReceipt,
    Payment,
    PaymentStatus,
    ReceiptKind,
    ReceiptState,
    Refund,
    RefundStatus,
)

logger = logging.getLogger(__name__)

# The send task's hard time limit; a claim older than twice that belongs to a dead worker.
SEND_TIME_LIMIT = 90
CLAIM_LEASE = timedelta(seconds=2 * SEND_TIME_LIMIT)
# A receipt queued this long ago and not yet taken lost its message: the sweep queues
# it again (under the broker's 1 h visibility timeout).
QUEUE_LEASE = timedelta(minutes=10)
# After a temporary error: 30 s, 1 min, 2, 4, ... never more than an hour.
RETRY_FIRST = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
# While the operator says "wait": 5 s, 10, 20, ... never more than 5 minutes.
POLL_FIRST = timedelta(seconds=5)
POLL_MAX = timedelta(minutes=5)
# A next try this close is enqueued with a countdown; later ones are left to the sweep
# (beat, every minute).
COUNTDOWN_MAX = timedelta(minutes=5)
SWEEP_BATCH = 500
SWEEP_SCAN = 20_000
ATTEMPTS_MAX = 32767  # PositiveSmallIntegerField

OPEN_STATES = (ReceiptState.PENDING, ReceiptState.WAITING)

# What the receipt prints: neutral, the same for every service (no medical content).
RECEIPT_ITEM_NAME = gettext_lazy("Medical services")
RECEIPT_ITEM_UNIT = pgettext_lazy("measurement unit on a fiscal receipt", "service")


# --- Delays ----------------------------------------------------------------------------


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th try ended in a temporary error."""
    return min(RETRY_FIRST * 2 ** min(max(attempts - 1, 0), 8), RETRY_MAX)


def poll_delay(attempts: int) -> timedelta:
    """The wait before asking again whether a registered receipt is fiscalised."""
    return min(POLL_FIRST * 2 ** min(max(attempts - 1, 0), 8), POLL_MAX)


# --- Creating receipts ------------------------------------------------------------------


def receipt_create_for_payment(*, payment: Payment) -> FiscalReceipt:
    """The sale receipt of a succeeded payment. Call it inside the transaction that
    records the payment as succeeded (pass that instance: its status must say so).
    Idempotent: a second call returns the receipt already made."""
    if payment.status != PaymentStatus.SUCCEEDED:
        raise ValueError("a sale receipt is made for a succeeded payment only")
    with transaction.atomic():
        receipt, created = FiscalReceipt.objects.get_or_create(
            payment=payment,
            kind=ReceiptKind.SELL,
            defaults={
                "amount": payment.amount,
                "external_id": f"pay-{payment.public_id}",
                "provider": enabled_provider() or "atol",
            },
        )
        if created:
            _created(receipt, payment=payment)
    return receipt


def receipt_create_for_refund(*, refund: Refund) -> FiscalReceipt:
    """The refund receipt of a succeeded refund, inside the transaction that records it.
    Idempotent like `receipt_create_for_payment`."""
    if refund.status != RefundStatus.SUCCEEDED:
        raise ValueError("a refund receipt is made for a succeeded refund only")
    with transaction.atomic():
        receipt, created = FiscalReceipt.objects.get_or_create(
            refund=refund,
            defaults={
                "kind": ReceiptKind.SELL_REFUND,
                "payment": refund.payment,
                "amount": refund.amount,
                "external_id": f"ref-{refund.public_id}",
                "provider": enabled_provider() or "atol",
            },
        )
        if created:
            _created(receipt, payment=refund.payment)
    return receipt


def _created(receipt: FiscalReceipt, *, payment: Payment) -> None:
    audit_record(
        actor=None,
        action=AuditAction.CREATE,
        obj=receipt,
        patient=payment.patient.user,
        detail={
            "what": "fiscal_receipt",
            "kind": receipt.kind,
            "amount": receipt.amount,
            "payment": str(payment.public_id),
            "external_id": receipt.external_id,
        },
    )
    if enabled_provider():
        pk = receipt.pk
        transaction.on_commit(lambda: _enqueue([pk]))


# --- The document ---------------------------------------------------------------------------


def _phone_for_receipt(phone: str) -> str:
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) == 11 and digits[0] in "78":
        return "+7" + digits[1:]
    return f"+{digits}" if len(digits) >= 10 else ""


def receipt_document(receipt: FiscalReceipt) -> ReceiptDocument:
    """What is sent to the operator: one neutral line in Russian, the patient's email
    (or phone) for the electronic receipt. Reads the receipt's payment and patient."""
    patient = receipt.payment.patient
    email = (patient.user.email or "").strip()
    with translation.override("ru"):
        name = str(RECEIPT_ITEM_NAME)
        unit = str(RECEIPT_ITEM_UNIT)
    line = ReceiptLine(
        name=name, price=receipt.amount, quantity=Decimal("1"), amount=receipt.amount, unit=unit
    )
    return ReceiptDocument(
        external_id=receipt.external_id,
        kind=DocumentKind(receipt.kind),
        created_at=receipt.created_at,
        lines=(line,),
        total=receipt.amount,
        client_email=email,
        client_phone="" if email else _phone_for_receipt(getattr(patient, "phone", "")),
    )


# --- Sending ------------------------------------------------------------------------------------


def receipt_send(*, receipt_id: int, now: datetime | None = None) -> FiscalReceipt:
    """One try at a receipt (the body of `payments.send_receipt`): register it or ask for
    its report. Does nothing when another worker holds it, when it is not due, when it
    is finished, or when sending is off; returns the row as it then is."""
    provider = enabled_provider()
    now = now or timezone.now()
    with transaction.atomic():
        receipt = (
            FiscalReceipt.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("payment__patient__user")
            .filter(pk=receipt_id, state__in=OPEN_STATES, next_attempt_at__lte=now)
            .first()
        )
        if receipt is None or not provider:
            return FiscalReceipt.objects.get(pk=receipt_id)
        if receipt.state == ReceiptState.PENDING:
            receipt.provider = provider
        operator = get_operator(receipt.provider)
        receipt.attempts = min(receipt.attempts + 1, ATTEMPTS_MAX)
        receipt.next_attempt_at = now + CLAIM_LEASE
        receipt.save(update_fields=["attempts", "next_attempt_at", "provider"])
        document = receipt_document(receipt) if receipt.state == ReceiptState.PENDING else None
    # The claim is committed: until it runs out no other worker takes this receipt.
    _forget_queued(receipt.pk)
    return _try(receipt, operator, document, now=now)


def _try(
    receipt: FiscalReceipt,
    operator: FiscalOperator,
    document: ReceiptDocument | None,
    *,
    now: datetime,
) -> FiscalReceipt:
    try:
        if document is not None:
            if not (document.client_email or document.client_phone):
                raise PermanentError("no-client-contact", "the patient has no email or phone")
            return _registered(receipt, operator.register(document), now=now)
        return _reported(receipt, operator.report(receipt.provider_uuid), now=now)
    except TemporaryError as exc:
        return _retry_later(receipt, exc.summary, now=now)
    except PermanentError as exc:
        return _failed(receipt, exc.summary)
    except Exception as exc:  # a bug here must not lose the receipt: try again later
        logger.exception("fiscal receipt %s: unexpected error", receipt.pk)
        return _retry_later(receipt, f"error: {type(exc).__name__}", now=now)


def _registered(
    receipt: FiscalReceipt, registration: Registration, *, now: datetime
) -> FiscalReceipt:
    delay = poll_delay(receipt.attempts)
    return _update(
        receipt,
        fields={
            "state": ReceiptState.WAITING,
            "provider_uuid": registration.uuid[:64],
            "next_attempt_at": now + delay,
            "last_error": "",
        },
        audit={"state": ReceiptState.WAITING, "duplicate": registration.duplicate},
        next_in=delay,
    )


def _reported(receipt: FiscalReceipt, report: Report, *, now: datetime) -> FiscalReceipt:
    if report.state == ReportState.DONE:
        return _done(receipt, report.requisites or Requisites())
    if report.state == ReportState.FAIL:
        return _failed(receipt, report.error or "fail")
    delay = poll_delay(receipt.attempts)
    return _update(
        receipt,
        fields={"next_attempt_at": now + delay, "last_error": ""},
        next_in=delay,
    )


def _retry_later(receipt: FiscalReceipt, error: str, *, now: datetime) -> FiscalReceipt:
    delay = retry_delay(receipt.attempts)
    logger.warning(
        "fiscal receipt %s: try %s failed (%s); next in %s s",
        receipt.pk,
        receipt.attempts,
        error.split(":", 1)[0],
        int(delay.total_seconds()),
    )
    return _update(
        receipt,
        fields={"next_attempt_at": now + delay, "last_error": error[:500]},
        next_in=delay,
    )


def _failed(receipt: FiscalReceipt, error: str) -> FiscalReceipt:
    logger.error(
        "fiscal receipt %s refused by the operator: %s", receipt.pk, error.split(":", 1)[0]
    )
    return _update(
        receipt,
        fields={"state": ReceiptState.FAILED, "last_error": error[:500]},
        audit={"state": ReceiptState.FAILED, "error": error[:120]},
    )


def _done(receipt: FiscalReceipt, requisites: Requisites) -> FiscalReceipt:
    now = timezone.now()
    fields = {
        "state": ReceiptState.DONE,
        "fiscal_receipt_number": requisites.fiscal_receipt_number[:32],
        "fiscal_document_number": requisites.fiscal_document_number[:32],
        "fiscal_document_attribute": requisites.fiscal_document_attribute[:32],
        "fn_number": requisites.fn_number[:32],
        "registered_at": requisites.registered_at or now,
        "receipt_url": requisites.receipt_url[:500],
        "confirmed_at": now,
        "last_error": "",
    }
    detail = {
        "state": ReceiptState.DONE,
        "fiscal_document_number": fields["fiscal_document_number"],
        "emailed": bool(fields["receipt_url"]),
    }
    if requisites.total is not None and requisites.total != receipt.amount:
        logger.error("fiscal receipt %s: the operator's total differs from ours", receipt.pk)
        detail["operator_total"] = requisites.total
    return _update(receipt, fields=fields, audit=detail, notify=True)


def _update(
    receipt: FiscalReceipt,
    *,
    fields: dict[str, object],
    audit: dict[str, object] | None = None,
    notify: bool = False,
    next_in: timedelta | None = None,
) -> FiscalReceipt:
    """Record a try's outcome on the row (if it is still open: after a claim's lease
    ran out another worker may have finished it), with its audit event and the
    patient's email in the same transaction."""
    with transaction.atomic():
        row = (
            FiscalReceipt.objects.select_for_update(of=("self",))
            .select_related("payment__patient__user")
            .get(pk=receipt.pk)
        )
        if row.state not in OPEN_STATES:
            return row
        for name, value in fields.items():
            setattr(row, name, value)
        row.save(update_fields=list(fields))
        patient_user = row.payment.patient.user
        if notify and row.receipt_url:
            notification_services.notification_send(
                user_id=patient_user.pk,
                event=notification_services.Event.PAYMENT_RECEIPT,
                object_type="fiscal_receipt",
                object_id=row.pk,
                link=row.receipt_url,
            )
        if audit is not None:
            audit_record(
                actor=None,
                action=AuditAction.CHANGE,
                obj=row,
                patient=patient_user,
                detail={"what": "fiscal_receipt", "kind": row.kind, **audit},
            )
        if next_in is not None and next_in <= COUNTDOWN_MAX:
            pk, countdown = row.pk, next_in.total_seconds()
            transaction.on_commit(lambda: _enqueue([pk], countdown=countdown))
    return row


# --- Queueing and the sweep -----------------------------------------------------------------


def _queued_key(receipt_id: int) -> str:
    return f"fiscal:receipt:queued:{receipt_id}"


def _forget_queued(receipt_id: int) -> None:
    try:
        cache.delete(_queued_key(receipt_id))
    except Exception:  # the cache is only a hint; the row is the record
        logger.warning("fiscal receipts: cache unavailable")


def _enqueue(ids: Iterable[int], *, countdown: float = 0.0, marked: bool = False) -> int:
    """Publish one send task per receipt, noting each in the cache (so the sweep does
    not queue it again while it waits). Stops at the first failure: the broker is away,
    and the rows are found again by the sweep. Never raises (it runs after commit)."""
    from payments.tasks_fiscal import send_receipt

    ids = list(ids)
    timeout = int(countdown + QUEUE_LEASE.total_seconds())
    for index, receipt_id in enumerate(ids):
        try:
            if not marked:
                cache.set(_queued_key(receipt_id), 1, timeout=timeout)
            send_receipt.apply_async((receipt_id,), countdown=countdown or None)
        except Exception:  # kombu's OperationalError and friends, a cache that is away
            logger.warning(
                "fiscal receipts: broker unavailable, %s left for the sweep", len(ids) - index
            )
            for left in ids[index:]:
                _forget_queued(left)
            return index
    return len(ids)


def receipts_sweep(*, now: datetime | None = None) -> int:
    """Queue the receipts whose next try is due (beat, every minute): new ones whose
    message was lost, retries after an error, polls of waiting ones, and receipts whose
    worker died (their claim's lease has run out). Returns how many were queued."""
    if not enabled_provider():
        return 0
    now = now or timezone.now()
    due = (
        FiscalReceipt.objects.filter(state__in=OPEN_STATES, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)
    )
    fresh = []
    timeout = int(QUEUE_LEASE.total_seconds())
    for receipt_id in due[:SWEEP_SCAN].iterator(chunk_size=1000):
        # Not queued again while a message for it waits (QUEUE_LEASE).
        if cache.add(_queued_key(receipt_id), 1, timeout=timeout):
            fresh.append(receipt_id)
            if len(fresh) >= SWEEP_BATCH:
                break
    return _enqueue(fresh, marked=True)


# --- A person's retry -------------------------------------------------------------------------


def _next_external_id(external_id: str) -> str:
    """A new id for a document the operator failed for good (it keeps the failed one
    under the old id): "pay-<uuid>" -> "pay-<uuid>-r2" -> "pay-<uuid>-r3"."""
    match = re.fullmatch(r"(.+)-r(\d+)", external_id)
    root, number = (match.group(1), int(match.group(2))) if match else (external_id, 1)
    return f"{root}-r{number + 1}"


def receipt_retry(*, by, receipt: FiscalReceipt) -> FiscalReceipt:  # noqa: ANN001
    """Try a receipt again now (the admin's "retry now"). A failed receipt goes back to
    pending; if the operator failed a registered document, the new one gets a new
    external id (the operator keeps the failed one under the old). Administrators only."""
    if not policies.can_retry_fiscal_receipt(by, receipt):
        raise PermissionDenied
    now = timezone.now()
    with transaction.atomic():
        row = (
            FiscalReceipt.objects.select_for_update(of=("self",))
            .select_related("payment__patient__user")
            .get(pk=receipt.pk)
        )
        if row.state == ReceiptState.DONE:
            raise ValidationError(_("This receipt is already fiscalised."))
        previous = row.state
        fields = ["next_attempt_at"]
        if row.state == ReceiptState.FAILED:
            row.state = ReceiptState.PENDING
            fields.append("state")
            if row.provider_uuid:
                row.external_id = _next_external_id(row.external_id)
                row.provider_uuid = ""
                fields += ["external_id", "provider_uuid"]
        row.next_attempt_at = now
        row.save(update_fields=fields)
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=row,
            patient=row.payment.patient.user,
            detail={
                "what": "fiscal_receipt",
                "retry": True,
                "from": previous,
                "external_id": row.external_id,
            },
        )
        if enabled_provider():
            pk = row.pk
            transaction.on_commit(lambda: _enqueue([pk]))
    return row
