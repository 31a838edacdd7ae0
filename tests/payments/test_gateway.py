"""payments.gateway against localstripe (the fake Stripe on loopback), and against a
scripted HTTP server for what localstripe cannot show: Stripe's own request shapes,
5xx answers and retries."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import translation

from payments.gateway import (
    CardDeclined,
    GatewayMisconfigured,
    GatewayUnavailable,
    IntentInfo,
    ObjectNotFound,
    PaymentRejected,
    StripeGateway,
    allow_stripe_csp,
    gateway,
    stripe_csp_update,
)
from tests.payments.localstripe import SECRET_KEY

GOOD_CARD = "4242424242424242"
# localstripe declines this one when charged (Stripe: "decline after attaching").
DECLINED_CARD = "4000000000000341"
THREE_D_SECURE_CARD = "4000002500003155"


def _intent(gw: StripeGateway, key: str = "payment-1", amount: int = 250000) -> IntentInfo:
    return gw.create_payment_intent(
        amount_minor=amount,
        currency="RUB",
        metadata={"payment": "0b7c", "n": 7},
        idempotency_key=key,
        description="Medical services",
        receipt_email="patient@example.org",
    )


# --- against localstripe --------------------------------------------------------------------


def test_create_and_retrieve_a_payment_intent(localstripe):
    gw = gateway()
    assert gw.localstripe_compat and gw.api_base == localstripe.url
    created = _intent(gw)
    assert created.id.startswith("pi_") and created.status == "requires_payment_method"
    assert created.amount_minor == 250000 and created.currency == "RUB"
    assert created.client_secret.startswith(created.id + "_secret_")
    assert created.metadata == {"payment": "0b7c", "n": "7"}
    assert created.last_error_message == "" and created.latest_charge_id is None
    again = gw.retrieve_payment_intent(created.id)
    assert again == created


def test_the_same_idempotency_key_gives_the_same_intent(localstripe):
    gw = gateway()
    first = _intent(gw, key="payment-abc")
    second = _intent(gw, key="payment-abc")
    assert second.id == first.id
    other = _intent(gw, key="payment-def")
    assert other.id != first.id
    status, listed = localstripe.request("GET", "/v1/payment_intents?limit=100")
    assert status == 200 and len(listed["data"]) == 2
    # The same key with another amount is our bug: refused, nothing created.
    with pytest.raises(PaymentRejected) as refused:
        _intent(gw, key="payment-abc", amount=100)
    assert refused.value.code == "idempotency"
    assert len(localstripe.request("GET", "/v1/payment_intents?limit=100")[1]["data"]) == 2


def test_confirm_with_a_card_token_charges_once(localstripe):
    gw = gateway()
    intent = _intent(gw)
    token = localstripe.create_token(GOOD_CARD)["id"]
    paid = gw.confirm_with_card_token(intent.id, token)
    assert paid.status == "succeeded" and paid.latest_charge_id.startswith("ch_")
    # A second submit (double click, another tab) answers the state, charges nothing.
    again = gw.confirm_with_card_token(intent.id, localstripe.create_token(GOOD_CARD)["id"])
    assert again.status == "succeeded" and again.latest_charge_id == paid.latest_charge_id
    status, charges = localstripe.request("GET", "/v1/charges?limit=100")
    assert status == 200 and len(charges["data"]) == 1


def test_a_declined_card_is_a_typed_error_and_nothing_is_charged(localstripe):
    gw = gateway()
    intent = _intent(gw)
    with pytest.raises(CardDeclined) as declined:
        gw.confirm_with_card_token(intent.id, localstripe.create_token(DECLINED_CARD)["id"])
    assert declined.value.code == "card_declined"
    assert isinstance(declined.value, PaymentRejected)
    with translation.override("en"):
        assert "declined" in declined.value.user_message
    after = gw.retrieve_payment_intent(intent.id)
    assert after.status == "requires_payment_method"
    assert after.last_error_message == "Your card was declined."
    # (Stripe lets the same intent be retried with another card; localstripe 1.15.10
    # refuses any confirmation after a failed charge, so that is not tested here.)
    with pytest.raises(PaymentRejected):
        gw.create_refund(
            payment_intent_id=intent.id, amount_minor=1, idempotency_key="r", metadata={}
        )


def test_a_card_that_needs_3d_secure_comes_back_for_the_browser(localstripe):
    gw = gateway()
    intent = _intent(gw)
    pending = gw.confirm_with_card_token(
        intent.id, localstripe.create_token(THREE_D_SECURE_CARD)["id"]
    )
    assert pending.status == "requires_action" and pending.next_action_type == "use_stripe_sdk"
    # What localstripe's confirmCardPayment does when the payer completes the check.
    localstripe.authenticate(intent.id, pending.client_secret, success=True)
    assert gw.retrieve_payment_intent(intent.id).status == "succeeded"

    failed = _intent(gw, key="payment-2")
    gw.confirm_with_card_token(failed.id, localstripe.create_token(THREE_D_SECURE_CARD)["id"])
    localstripe.authenticate(failed.id, failed.client_secret, success=False)
    after = gw.retrieve_payment_intent(failed.id)
    assert (
        after.status == "requires_payment_method" and "authentication" in after.last_error_message
    )


def test_cancel_is_idempotent_and_a_paid_intent_cannot_be_cancelled(localstripe):
    gw = gateway()
    intent = _intent(gw)
    assert gw.cancel_payment_intent(intent.id).status == "canceled"
    assert gw.cancel_payment_intent(intent.id).status == "canceled"
    paid = _intent(gw, key="payment-paid")
    gw.confirm_with_card_token(paid.id, localstripe.create_token(GOOD_CARD)["id"])
    with pytest.raises(PaymentRejected):
        gw.cancel_payment_intent(paid.id)
    assert gw.retrieve_payment_intent(paid.id).status == "succeeded"


def test_refunds_partial_idempotent_and_listed_by_charge(localstripe):
    gw = gateway()
    intent = _intent(gw)
    paid = gw.confirm_with_card_token(intent.id, localstripe.create_token(GOOD_CARD)["id"])
    first = gw.create_refund(
        payment_intent_id=intent.id,
        amount_minor=50000,
        idempotency_key="refund-1",
        metadata={"refund": "r-1"},
    )
    assert first.id.startswith("re_") and first.status == "succeeded"
    assert first.amount_minor == 50000 and first.payment_intent_id == intent.id
    assert first.charge_id == paid.latest_charge_id and first.metadata == {"refund": "r-1"}
    assert first.currency == "RUB" and first.failure_reason is None
    # A retry after a lost answer: the same refund, no second one.
    retried = gw.create_refund(
        payment_intent_id=intent.id,
        amount_minor=50000,
        idempotency_key="refund-1",
        metadata={"refund": "r-1"},
    )
    assert retried.id == first.id
    second = gw.create_refund(
        payment_intent_id=intent.id,
        amount_minor=20000,
        idempotency_key="refund-2",
        metadata={"refund": "r-2"},
    )
    assert gw.retrieve_refund(second.id) == second
    listed = gw.list_charge_refunds(paid.latest_charge_id)
    assert sorted(r.id for r in listed) == sorted([first.id, second.id])


def test_refunding_an_unpaid_intent_is_refused(localstripe):
    gw = gateway()
    intent = _intent(gw)
    with pytest.raises(PaymentRejected):
        gw.create_refund(
            payment_intent_id=intent.id,
            amount_minor=100,
            idempotency_key="refund-x",
            metadata={},
        )


def test_unknown_objects_are_not_found(localstripe):
    gw = gateway()
    with pytest.raises(ObjectNotFound):
        gw.retrieve_payment_intent("pi_doesnotexist")
    with pytest.raises(ObjectNotFound):
        gw.retrieve_refund("re_doesnotexist")


def test_a_missing_or_refused_key_is_misconfiguration(localstripe, settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(GatewayMisconfigured):
        gateway().retrieve_payment_intent("pi_x")
    # localstripe refuses keys that are not secret keys (401), like Stripe.
    refused = StripeGateway("pk_test_publishable", api_base=localstripe.url)
    with pytest.raises(GatewayMisconfigured) as caught:
        refused.retrieve_payment_intent("pi_x")
    assert isinstance(caught.value, GatewayUnavailable)


def test_the_factory_follows_the_settings(localstripe, settings):
    first = gateway()
    assert gateway() is first
    settings.STRIPE_API_BASE = ""
    stripe_itself = gateway()
    assert stripe_itself is not first and not stripe_itself.localstripe_compat


def test_an_unreachable_stripe_is_unavailable(localstripe):
    # A port nothing listens on (localstripe's, after asking the kernel for a free one).
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gw = StripeGateway(SECRET_KEY, api_base=f"http://127.0.0.1:{port}", max_network_retries=0)
    with pytest.raises(GatewayUnavailable):
        gw.retrieve_payment_intent("pi_x")


# --- against a scripted server: Stripe's shapes, 5xx, retries --------------------------------


class ScriptedStripe:
    """Answers each request with the next scripted (status, body), records what came."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict]] = []
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                outer.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "form": dict(urllib.parse.parse_qsl(body)),
                    }
                )
                status, payload = outer.script.pop(0) if outer.script else (500, {})
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[ScriptedStripe]:
    server = ScriptedStripe()
    yield server
    server.stop()


def _pi(status: str = "requires_payment_method", **extra) -> dict:  # noqa: ANN003
    return {
        "id": "pi_123",
        "object": "payment_intent",
        "amount": 250000,
        "currency": "rub",
        "status": status,
        "client_secret": "pi_123_secret_abc",
        "metadata": {"payment": "0b7c"},
        "latest_charge": None,
        **extra,
    }


def test_with_stripe_itself_the_intent_carries_description_and_receipt_email(scripted):
    gw = StripeGateway(SECRET_KEY, api_base=scripted.url, localstripe_compat=False)
    scripted.script = [(200, _pi())]
    info = _intent(gw, key="payment-xyz")
    sent = scripted.requests[0]
    assert sent["method"] == "POST" and sent["path"] == "/v1/payment_intents"
    assert sent["headers"]["Idempotency-Key"] == "payment-xyz"
    assert sent["form"]["amount"] == "250000" and sent["form"]["currency"] == "rub"
    assert sent["form"]["description"] == "Medical services"
    assert sent["form"]["receipt_email"] == "patient@example.org"
    assert sent["form"]["metadata[payment]"] == "0b7c"
    assert info.id == "pi_123" and info.currency == "RUB"


def test_with_stripe_itself_a_token_is_confirmed_as_payment_method_data(scripted):
    gw = StripeGateway(SECRET_KEY, api_base=scripted.url, localstripe_compat=False)
    scripted.script = [
        (200, _pi()),
        (200, _pi("succeeded", latest_charge="ch_1")),
    ]
    info = gw.confirm_with_card_token("pi_123", "tok_visa", return_url="https://p.example/r")
    retrieve, confirm = scripted.requests
    assert retrieve["method"] == "GET" and retrieve["path"].startswith("/v1/payment_intents/pi_123")
    assert confirm["path"] == "/v1/payment_intents/pi_123/confirm"
    assert confirm["form"]["payment_method_data[type]"] == "card"
    assert confirm["form"]["payment_method_data[card][token]"] == "tok_visa"
    assert confirm["form"]["return_url"] == "https://p.example/r"
    assert info.status == "succeeded" and info.latest_charge_id == "ch_1"


def test_a_5xx_is_retried_with_the_same_idempotency_key(scripted):
    gw = StripeGateway(SECRET_KEY, api_base=scripted.url, max_network_retries=2)
    scripted.script = [(500, {"error": {"type": "api_error", "message": "boom"}}), (200, _pi())]
    info = _intent(gw, key="payment-retry")
    assert info.id == "pi_123"
    keys = [r["headers"]["Idempotency-Key"] for r in scripted.requests]
    assert keys == ["payment-retry", "payment-retry"]


def test_5xx_after_the_retries_is_unavailable(scripted):
    gw = StripeGateway(SECRET_KEY, api_base=scripted.url, max_network_retries=1)
    scripted.script = [(503, {"error": {"type": "api_error"}})] * 2
    with pytest.raises(GatewayUnavailable):
        gw.retrieve_payment_intent("pi_123")
    assert len(scripted.requests) == 2


def test_a_rate_limit_is_unavailable_not_a_rejection(scripted):
    gw = StripeGateway(SECRET_KEY, api_base=scripted.url, max_network_retries=0)
    scripted.script = [(429, {"error": {"type": "invalid_request_error", "code": "rate_limit"}})]
    with pytest.raises(GatewayUnavailable):
        gw.retrieve_refund("re_1")


def test_a_decline_code_picks_the_message(scripted):
    gw = StripeGateway(SECRET_KEY, api_base=scripted.url, localstripe_compat=False)
    error = {
        "error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        }
    }
    scripted.script = [(200, _pi()), (402, error)]
    with pytest.raises(CardDeclined) as declined, translation.override("en"):
        gw.confirm_with_card_token("pi_123", "tok_x")
    assert declined.value.decline_code == "insufficient_funds"
    with translation.override("en"):
        assert "insufficient funds" in declined.value.user_message


# --- CSP for the checkout page ---------------------------------------------------------------


def test_csp_for_stripe_itself(settings):
    settings.STRIPE_JS_URL = "https://js.stripe.com/v3/"
    settings.STRIPE_API_BASE = ""
    update = stripe_csp_update()
    assert "https://js.stripe.com" in update["script-src"]
    assert update["connect-src"] == ["https://api.stripe.com"]
    assert {"https://js.stripe.com", "https://hooks.stripe.com"} <= set(update["frame-src"])


def test_csp_for_localstripe_only_on_the_decorated_page(settings, rf: RequestFactory):
    settings.STRIPE_JS_URL = "http://127.0.0.1:8420/js.stripe.com/v3/"
    settings.STRIPE_API_BASE = "http://127.0.0.1:8420"
    assert stripe_csp_update() == {
        "script-src": ["http://127.0.0.1:8420"],
        "connect-src": ["http://127.0.0.1:8420"],
    }
    from csp.middleware import CSPMiddleware

    def page(request):  # noqa: ANN001, ANN202
        return HttpResponse("checkout")

    middleware = CSPMiddleware(lambda request: HttpResponse())
    for view, allowed in ((allow_stripe_csp(page), True), (page, False)):
        request = rf.get("/")
        middleware.process_request(request)
        header = middleware.process_response(request, view(request))["Content-Security-Policy"]
        script_src = next(d for d in header.split(";") if d.strip().startswith("script-src"))
        assert ("http://127.0.0.1:8420" in script_src) is allowed
        assert "'self'" in script_src
