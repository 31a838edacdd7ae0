"""The one door to Stripe: a small wrapper around `stripe.StripeClient` (stripe v16, whose
objects are not dicts) that answers with frozen dataclasses and typed errors, so the
rest of the portal never handles a Stripe object or a Stripe exception.

    from payments.gateway import gateway, CardDeclined, GatewayUnavailable

    info = gateway().create_payment_intent(amount_minor=150000, currency="RUB", ...)

Errors:
  GatewayUnavailable    network trouble, Stripe 5xx, rate limit: nothing is known to have
                        changed; retry later (a webhook answers 503 so Stripe redelivers)
   GatewayMisconfigured  no or wrong API key: the same for callers, logged as an error
  PaymentRejected       Stripe refused the request (amount too large, wrong state):
                        `user_message` is safe to show, nothing is a 500
   CardDeclined          the card was declined or failed authentication
  ObjectNotFound        no such object in this Stripe account
  WebhookRejected       a webhook delivery failed verification

`settings.STRIPE_API_BASE` points the client at another server (tests: localstripe). Such
a server is taken to speak localstripe's subset of the API, so the gateway then leaves
out what localstripe refuses (a PaymentIntent's `description`, `receipt_email`) and
confirms a card token by setting the token's card as the payment method, then
confirming (localstripe does not implement `payment_method_data`). With Stripe itself it
confirms with `payment_method_data[card][token]`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import stripe
from django.conf import settings
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)

# Both directions: Stripe's own check only refuses timestamps older than this.
WEBHOOK_TOLERANCE_SECONDS = 300
NETWORK_RETRIES = 2
REQUEST_TIMEOUT_SECONDS = 20
STRIPE_API = "https://api.stripe.com"


# --- errors --------------------------------------------------------------------------------


class GatewayError(Exception):
    """Base of the gateway's errors. `code` is Stripe's error code when there is one."""

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class GatewayUnavailable(GatewayError):
    """Stripe could not be reached or failed (5xx, 429, timeouts): try again later."""


class GatewayMisconfigured(GatewayUnavailable):
    """No or wrong API key. Retrying helps once an operator fixes the settings."""


class ObjectNotFound(GatewayError):
    """No such object in this Stripe account."""


class PaymentRejected(GatewayError):
    """Stripe refused the request. Show `user_message`; never a 500."""

    default_user_message = _("The payment could not be completed. Please try again later.")

    @property
    def user_message(self) -> str:
        return str(self.default_user_message)


class CardDeclined(PaymentRejected):
    """The card was declined or its authentication failed."""

    default_user_message = _(
        "Your card was declined. Try another card or contact the bank that issued it."
    )

    def __init__(
        self, message: str = "", *, code: str | None = None, decline_code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.decline_code = decline_code

    @property
    def user_message(self) -> str:
        reason = self.decline_code or self.code or ""
        return str(_DECLINE_MESSAGES.get(reason, self.default_user_message))


_DECLINE_MESSAGES = {
    "insufficient_funds": _("The card has insufficient funds. Try another card."),
    "expired_card": _("The card has expired. Try another card."),
    "incorrect_cvc": _("The security code (CVC) is incorrect."),
    "invalid_cvc": _("The security code (CVC) is incorrect."),
    "incorrect_number": _("The card number is incorrect."),
    "invalid_number": _("The card number is incorrect."),
    "invalid_expiry_month": _("The card's expiry date is incorrect."),
    "invalid_expiry_year": _("The card's expiry date is incorrect."),
    "processing_error": _("The bank could not process the card. Please try again."),
    "payment_intent_authentication_failure": _(
        "The bank could not confirm the payment. Please try again or use another card."
    ),
    "authentication_required": _(
        "The bank asks to confirm the payment. Please try again and confirm it."
    ),
}


class WebhookRejected(GatewayError):
    """A webhook delivery that is not a genuine, recent Stripe event. `reason` is short and
    safe to log (never the payload)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="webhook_rejected")
        self.reason = reason


# --- answers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntentInfo:
    """A PaymentIntent as the portal needs it. `currency` is upper case ("RUB")."""

    id: str
    status: str
    amount_minor: int
    currency: str
    client_secret: str
    last_error_message: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    latest_charge_id: str | None = None
    # Stripe's `next_action.type` when status is requires_action ("use_stripe_sdk", ...).
    next_action_type: str | None = None


@dataclass(frozen=True)
class RefundInfo:
    """A Refund. `status`: pending, requires_action, succeeded, failed or canceled."""

    id: str
    status: str
    amount_minor: int
    payment_intent_id: str | None
    failure_reason: str | None
    currency: str = ""
    charge_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


def stripe_value(obj: Any, key: str) -> Any:
    """A member of a Stripe object or a dict, None when absent (stripe v16 objects have no
    `.get`)."""
    if obj is None:
        return None
    try:
        return obj[key]
    except (KeyError, TypeError, IndexError):
        return getattr(obj, key, None)


_value = stripe_value


def _id_of(obj: Any) -> str | None:
    """An expandable field: an id string, or the object itself (localstripe expands)."""
    if obj is None or isinstance(obj, str):
        return obj
    return _value(obj, "id")


def _metadata(obj: Any) -> dict[str, str]:
    metadata = _value(obj, "metadata")
    if metadata is None:
        return {}
    if hasattr(metadata, "to_dict"):
        metadata = metadata.to_dict()
    return {str(k): str(v) for k, v in dict(metadata).items()}


def _intent_info(intent: Any) -> IntentInfo:
    error = _value(intent, "last_payment_error")
    next_action = _value(intent, "next_action")
    return IntentInfo(
        id=intent.id,
        status=str(_value(intent, "status") or ""),
        amount_minor=int(_value(intent, "amount") or 0),
        currency=str(_value(intent, "currency") or "").upper(),
        client_secret=str(_value(intent, "client_secret") or ""),
        last_error_message=str(_value(error, "message") or "") if error else "",
        metadata=_metadata(intent),
        latest_charge_id=_id_of(_value(intent, "latest_charge")),
        next_action_type=_value(next_action, "type") if next_action else None,
    )


def _refund_info(refund: Any) -> RefundInfo:
    return RefundInfo(
        id=refund.id,
        status=str(_value(refund, "status") or ""),
        amount_minor=int(_value(refund, "amount") or 0),
        payment_intent_id=_id_of(_value(refund, "payment_intent")),
        failure_reason=_value(refund, "failure_reason"),
        currency=str(_value(refund, "currency") or "").upper(),
        charge_id=_id_of(_value(refund, "charge")),
        metadata=_metadata(refund),
    )


# --- the gateway ---------------------------------------------------------------------------


@contextlib.contextmanager
def _translated_errors(operation: str) -> Iterator[None]:
    """Stripe's exceptions -> ours. Messages logged here carry ids and codes only."""
    try:
        yield
    except stripe.CardError as exc:
        error = exc.error
        raise CardDeclined(
            str(exc.user_message or "card declined"),
            code=exc.code,
            decline_code=_value(error, "decline_code") if error else None,
        ) from exc
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        logger.error("stripe %s: the API key was refused (%s)", operation, exc.http_status)
        raise GatewayMisconfigured(f"{operation}: API key refused") from exc
    except stripe.IdempotencyError as exc:
        # The same key with other parameters: a bug of ours, never the user's.
        logger.error("stripe %s: idempotency key reused with other parameters", operation)
        raise PaymentRejected(f"{operation}: idempotency key conflict", code="idempotency") from exc
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise ObjectNotFound(f"{operation}: not found", code=exc.code) from exc
        logger.warning("stripe %s refused: %s %s", operation, exc.http_status, exc.code)
        raise PaymentRejected(str(exc.user_message or operation), code=exc.code) from exc
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        logger.warning("stripe %s unavailable: %s", operation, type(exc).__name__)
        raise GatewayUnavailable(f"{operation}: {type(exc).__name__}") from exc
    except stripe.StripeError as exc:
        status = exc.http_status or 0
        if status >= 500 or status in (0, 409, 429):
            raise GatewayUnavailable(f"{operation}: {type(exc).__name__}") from exc
        raise PaymentRejected(str(exc.user_message or operation), code=exc.code) from exc


class StripeGateway:
    def __init__(
        self,
        api_key: str,
        *,
        api_base: str = "",
        webhook_secret: str = "",
        max_network_retries: int = NETWORK_RETRIES,
        http_client: stripe.HTTPClient | None = None,
        localstripe_compat: bool | None = None,
    ) -> None:
        self._api_key = api_key
        self.api_base = api_base.rstrip("/")
        self._webhook_secret = webhook_secret
        # Another API base than Stripe's is localstripe unless told otherwise.
        self.localstripe_compat = (
            bool(self.api_base) if localstripe_compat is None else localstripe_compat
        )
        self._max_network_retries = max_network_retries
        self._http_client = http_client
        self._client_instance: stripe.StripeClient | None = None

    @property
    def _client(self) -> stripe.StripeClient:
        if self._client_instance is None:
            if not self._api_key:
                logger.error("stripe: STRIPE_SECRET_KEY is not set")
                raise GatewayMisconfigured("STRIPE_SECRET_KEY is not set")
            options: dict[str, Any] = {
                "max_network_retries": self._max_network_retries,
                "http_client": self._http_client
                or stripe.new_default_http_client(timeout=REQUEST_TIMEOUT_SECONDS),
            }
            if self.api_base:
                options["base_addresses"] = {"api": self.api_base}
            self._client_instance = stripe.StripeClient(self._api_key, **options)
        return self._client_instance

    def _call(self, operation: str, func: Callable[[], Any]) -> Any:
        with _translated_errors(operation):
            return func()

    # --- PaymentIntents

    def create_payment_intent(
        self,
        *,
        amount_minor: int,
        currency: str,
        metadata: Mapping[str, Any],
        idempotency_key: str,
        description: str,
        receipt_email: str | None = None,
    ) -> IntentInfo:
        """A PaymentIntent for a card payment confirmed in the browser. The same
        `idempotency_key` with the same arguments returns the same intent (for 24 h at
        Stripe): derive it from our row, e.g. f"payment-{payment.public_id}"."""
        if amount_minor <= 0:
            raise ValueError("amount_minor must be positive")
        params: dict[str, Any] = {
            "amount": amount_minor,
            "currency": currency.lower(),
            "metadata": {str(k): str(v) for k, v in metadata.items()},
        }
        if not self.localstripe_compat:
            params["description"] = description
            if receipt_email:
                params["receipt_email"] = receipt_email
        intent = self._call(
            "create payment intent",
            lambda: self._client.v1.payment_intents.create(
                params=params, options={"idempotency_key": idempotency_key}
            ),
        )
        return _intent_info(intent)

    def retrieve_payment_intent(self, intent_id: str) -> IntentInfo:
        intent = self._call(
            "retrieve payment intent",
            lambda: self._client.v1.payment_intents.retrieve(intent_id),
        )
        return _intent_info(intent)

    def cancel_payment_intent(self, intent_id: str) -> IntentInfo:
        """Cancel; an intent already cancelled is answered as it is. An intent that
        succeeded or is processing cannot be cancelled: PaymentRejected."""
        try:
            intent = self._call(
                "cancel payment intent",
                lambda: self._client.v1.payment_intents.cancel(intent_id),
            )
        except PaymentRejected:
            current = self.retrieve_payment_intent(intent_id)
            if current.status == "canceled":
                return current
            raise
        return _intent_info(intent)

    def confirm_with_card_token(
        self, intent_id: str, token_id: str, *, return_url: str | None = None
    ) -> IntentInfo:
        """Confirm on the server with a card token from Stripe.js `createToken` (the path
        of localstripe's test Stripe.js; also valid with Stripe). An intent that is no
        longer waiting for a card (succeeded, processing, requires_action, canceled) is
        answered as it is, so a double submit never charges twice. A decline raises
        CardDeclined; `requires_action` comes back for the browser to finish
        (`stripe.confirmCardPayment(client_secret)`)."""
        current = self.retrieve_payment_intent(intent_id)
        if current.status not in ("requires_payment_method", "requires_confirmation"):
            return current
        if self.localstripe_compat:
            token = self._call("retrieve token", lambda: self._client.v1.tokens.retrieve(token_id))
            card_id = _id_of(_value(token, "card"))
            if not card_id:
                raise PaymentRejected("token without a card", code="token_without_card")
            self._call(
                "attach card",
                lambda: self._client.v1.payment_intents.update(
                    intent_id, params={"payment_method": card_id}
                ),
            )
            intent = self._call(
                "confirm payment intent",
                lambda: self._client.v1.payment_intents.confirm(intent_id),
            )
        else:
            params: dict[str, Any] = {
                "payment_method_data": {"type": "card", "card": {"token": token_id}},
                "use_stripe_sdk": True,
            }
            if return_url:
                params["return_url"] = return_url
            intent = self._call(
                "confirm payment intent",
                lambda: self._client.v1.payment_intents.confirm(intent_id, params=params),
            )
        return _intent_info(intent)

    # --- Refunds

    def create_refund(
        self,
        *,
        payment_intent_id: str,
        amount_minor: int,
        idempotency_key: str,
        metadata: Mapping[str, Any],
    ) -> RefundInfo:
        """Refund part or all of a payment. Derive `idempotency_key` from our Refund row
        (e.g. f"refund-{refund.key}") so a retry never refunds twice."""
        if amount_minor <= 0:
            raise ValueError("amount_minor must be positive")
        params = {
            "payment_intent": payment_intent_id,
            "amount": amount_minor,
            "metadata": {str(k): str(v) for k, v in metadata.items()},
        }
        refund = self._call(
            "create refund",
            lambda: self._client.v1.refunds.create(
                params=params, options={"idempotency_key": idempotency_key}
            ),
        )
        return _refund_info(refund)

    def retrieve_refund(self, refund_id: str) -> RefundInfo:
        refund = self._call("retrieve refund", lambda: self._client.v1.refunds.retrieve(refund_id))
        return _refund_info(refund)

    def list_charge_refunds(self, charge_id: str) -> list[RefundInfo]:
        """Every refund of a charge (a `charge.refunded` event names only the charge)."""

        def fetch() -> list[RefundInfo]:
            page = self._client.v1.refunds.list(params={"charge": charge_id, "limit": 100})
            return [_refund_info(refund) for refund in page.auto_paging_iter()]

        return self._call("list refunds", fetch)

    # --- Webhooks

    def verify_webhook(
        self, payload: bytes, sig_header: str, *, now: float | datetime | None = None
    ) -> stripe.Event:
        """The event of a genuine delivery, or WebhookRejected. Genuine: a `v1` signature
        (HMAC-SHA256 of "<t>.<body>" with STRIPE_WEBHOOK_SECRET) matches, and `t` is
        within 5 minutes of now in either direction — a replayed old delivery and one
        stamped in the future are both refused."""
        secret = self._webhook_secret
        if not secret:
            logger.error("stripe webhook: STRIPE_WEBHOOK_SECRET is not set")
            raise WebhookRejected("no webhook secret configured")
        if not sig_header:
            raise WebhookRejected("no signature header")
        timestamp, signatures = _parse_signature_header(sig_header)
        expected = hmac.new(
            secret.encode(), str(timestamp).encode() + b"." + payload, hashlib.sha256
        ).hexdigest()
        if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            raise WebhookRejected("signature mismatch")
        if isinstance(now, datetime):
            now = now.timestamp()
        current = time.time() if now is None else float(now)
        if abs(current - timestamp) > WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookRejected("timestamp outside the tolerance")
        try:
            values = json.loads(payload)
        except ValueError:
            raise WebhookRejected("body is not JSON") from None
        if not (
            isinstance(values, dict)
            and values.get("object", "event") == "event"
            and isinstance(values.get("id"), str)
            and 0 < len(values["id"]) <= 255
            and isinstance(values.get("type"), str)
            and 0 < len(values["type"]) <= 100
            and isinstance(values.get("data"), dict)
            and isinstance(values["data"].get("object"), dict)
        ):
            raise WebhookRejected("body is not a Stripe event")
        try:
            return stripe.Event.construct_from(values, self._api_key or None)
        except (TypeError, ValueError, KeyError) as exc:
            raise WebhookRejected(f"body is not a Stripe event ({type(exc).__name__})") from None


def _parse_signature_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookRejected("malformed timestamp") from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise WebhookRejected("no timestamp in the signature header")
    if not signatures:
        raise WebhookRejected("no v1 signature")
    return timestamp, signatures


@functools.lru_cache(maxsize=4)
def _gateway_for(api_key: str, api_base: str, webhook_secret: str) -> StripeGateway:
    return StripeGateway(api_key, api_base=api_base, webhook_secret=webhook_secret)


def gateway() -> StripeGateway:
    """The gateway for the current settings (STRIPE_SECRET_KEY, STRIPE_API_BASE,
    STRIPE_WEBHOOK_SECRET); tests change the settings to point it at localstripe."""
    return _gateway_for(
        settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_WEBHOOK_SECRET
    )


# --- Content Security Policy for the checkout page ------------------------------------------


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def stripe_csp_update() -> dict[str, list[str]]:
    """What a page running Stripe.js must add to the portal's CSP, from the current
    settings: Stripe's documented sources, or the stand-in's origin (localstripe serves
    its Stripe.js and API from one origin and uses no frames)."""
    js = _origin(settings.STRIPE_JS_URL)
    api = _origin(settings.STRIPE_API_BASE) if settings.STRIPE_API_BASE else STRIPE_API
    update: dict[str, list[str]] = {"script-src": [js], "connect-src": [api]}
    if js == "https://js.stripe.com":
        update["script-src"].append("https://*.js.stripe.com")
        update["frame-src"] = ["https://js.stripe.com", "https://*.js.stripe.com"]
        update["frame-src"].append("https://hooks.stripe.com")
        update["img-src"] = ["https://*.stripe.com"]
    elif js != api:
        update["connect-src"].append(js)
    return update


def allow_stripe_csp(view: Callable) -> Callable:
    """View decorator: this page's CSP also allows Stripe.js (only the checkout pages,
    so no other page can load a third-party script)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        response = view(request, *args, **kwargs)
        update = dict(getattr(response, "_csp_update", None) or {})
        for directive, sources in stripe_csp_update().items():
            update[directive] = [*update.get(directive, []), *sources]
        response._csp_update = update  # noqa: SLF001 - django-csp's per-response hook
        return response

    return wrapped
