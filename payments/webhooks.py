"""Stripe's webhook endpoint: POST /payments/stripe/webhook/ (no sign-in, no CSRF: the
signature is the credential).

1. The signature is checked (`StripeGateway.verify_webhook`: HMAC with
   STRIPE_WEBHOOK_SECRET, timestamp within 5 minutes either way). A delivery that fails
   is answered 400, stores nothing and is logged without its body.
2. In one transaction the event id is stored (`WebhookEvent`, unique per provider and
   id) and the event is acted on. An id already stored is a redelivery: its `deliveries`
   goes up and nothing else happens (exactly once, ADR 0011).
3. Acting never trusts the event's body: the payment or refund is re-read from Stripe by
   `payments.workflows.payment_intent_sync` / `payments.services.refund_sync`, so events
   may come in any order, late or twice. If Stripe cannot be reached the transaction,
   event row included, is rolled back and the answer is 503: Stripe delivers it again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments.gateway import (
    GatewayUnavailable,
    ObjectNotFound,
    WebhookRejected,
    gateway,
)
from payments.gateway import stripe_value as _value
from payments.models import WebhookEvent, WebhookOutcome

logger = logging.getLogger(__name__)

PROVIDER = "stripe"

PAYMENT_INTENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.processing",
    }
)
REFUND_EVENTS = frozenset(
    {"charge.refund.updated", "refund.created", "refund.updated", "refund.failed"}
)
CHARGE_REFUNDED = "charge.refunded"
DUPLICATE = "duplicate"


def _dispatch(event_type: str, object_id: str) -> str:
    """Act on one event; the outcome to record. Imports are lazy: the workflows import
    scheduling, and this module is loaded by the URLconf."""
    if event_type in PAYMENT_INTENT_EVENTS:
        from payments.workflows import payment_intent_sync

        found = payment_intent_sync(intent_id=object_id) is not None
    elif event_type in REFUND_EVENTS:
        from payments.services import refund_sync

        found = refund_sync(provider_refund_id=object_id) is not None
    elif event_type == CHARGE_REFUNDED:
        from payments.services import refund_sync

        found = False
        for refund in gateway().list_charge_refunds(object_id):
            found = (refund_sync(provider_refund_id=refund.id) is not None) or found
    else:
        return WebhookOutcome.IGNORED
    return WebhookOutcome.PROCESSED if found else WebhookOutcome.NO_MATCH


def stripe_event_handle(*, event: Any) -> str:
    """Store a verified event once and act on it, in one transaction. Returns the outcome
    recorded, or "duplicate" for an event already stored. Raises GatewayUnavailable
    (nothing kept) when Stripe cannot be asked."""
    data_object = _value(_value(event, "data"), "object")
    object_id = str(_value(data_object, "id") or "") if data_object is not None else ""
    created = _value(event, "created")
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = WebhookEvent.objects.create(
                    provider=PROVIDER,
                    event_id=event.id,
                    type=str(_value(event, "type") or "")[:100],
                    object_id=object_id[:255],
                    livemode=bool(_value(event, "livemode")),
                    created_at_provider=(
                        datetime.fromtimestamp(int(created), tz=UTC) if created else None
                    ),
                    outcome=WebhookOutcome.PROCESSED,
                )
        except IntegrityError:
            # Already stored (a concurrent first delivery waits for the other to commit).
            WebhookEvent.objects.filter(provider=PROVIDER, event_id=event.id).update(
                deliveries=F("deliveries") + 1
            )
            return DUPLICATE
        try:
            outcome = _dispatch(row.type, object_id) if object_id else WebhookOutcome.IGNORED
        except ObjectNotFound:
            # Stripe has no such object for our key: not ours (another account or mode).
            outcome = WebhookOutcome.NO_MATCH
        if outcome != row.outcome:
            row.outcome = outcome
            row.save(update_fields=["outcome"])
    return outcome


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = gateway().verify_webhook(request.body, request.headers.get("Stripe-Signature", ""))
    except WebhookRejected as exc:
        logger.warning("stripe webhook rejected: %s", exc.reason)
        return HttpResponseBadRequest("rejected", content_type="text/plain")
    try:
        outcome = stripe_event_handle(event=event)
    except GatewayUnavailable:
        logger.warning("stripe webhook %s: Stripe unavailable, asking for redelivery", event.id)
        return HttpResponse("try again later", status=503, content_type="text/plain")
    logger.info("stripe webhook %s %s: %s", event.id, _value(event, "type"), outcome)
    return JsonResponse({"received": True, "outcome": outcome})
