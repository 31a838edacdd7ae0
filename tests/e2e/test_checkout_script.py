"""static/js/checkout.js in Chromium, with localstripe's test Stripe.js: the card path
(token → our confirm endpoint), a declined card (an alert the patient can read, nothing
charged, the button usable again) and 3-D Secure (localstripe's dialog). The page must
load Stripe.js under the strict CSP (the checkout view adds localstripe's origin) and
pass axe with the test card fields labelled by the script.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from payments.models import FiscalReceipt, Payment, PaymentStatus
from scheduling.models import AppointmentStatus
from tests import factories
from tests.e2e.harness import assert_accessible
from tests.e2e.test_journeys_accounts import sign_in
from tests.payments.helpers import make_paid_clinic
from tests.payments.localstripe import localstripe, localstripe_server  # noqa: F401

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # localstripe declines it when charged
THREE_D_SECURE_CARD = "4000002500003155"


@pytest.fixture(autouse=True)
def _no_fiscal(settings):
    settings.FISCAL_PROVIDER = ""


def _open_checkout(page: Page, live_server) -> Payment:  # noqa: ANN001
    clinic = make_paid_clinic()
    patient = factories.make_patient(language="en")
    held = clinic.hold(patient)
    sign_in(page, patient.email)
    page.goto(reverse("payments:checkout", args=[held.public_id]))
    expect(page.get_by_role("textbox", name="Card number")).to_be_visible()
    return Payment.objects.get(appointment=held)


def _fill_card(page: Page, number: str) -> None:
    page.get_by_role("textbox", name="Card number").fill(number)
    page.get_by_role("textbox", name="Expiry month (MM)").fill("12")
    page.get_by_role("textbox", name="Expiry year (YY)").fill("34")
    page.get_by_role("textbox", name="Security code (CVC)").fill("123")
    page.get_by_role("textbox", name="Postal code").fill("12345")


def test_paying_by_card_goes_to_the_paid_payment(live_server, page: Page, localstripe):  # noqa: F811
    payment = _open_checkout(page, live_server)
    assert_accessible(page)
    _fill_card(page, GOOD_CARD)
    button = page.locator("#checkout-submit")
    button.click()
    expect(page).to_have_url(
        re.compile(re.escape(reverse("payments:payment_detail", args=[payment.public_id])) + "$")
    )
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.appointment.status == AppointmentStatus.BOOKED
    assert FiscalReceipt.objects.filter(payment=payment).count() == 1
    assert_accessible(page)


@pytest.mark.allow_console_errors
def test_a_declined_card_is_announced_and_can_be_tried_again(
    live_server,
    page: Page,
    console,
    localstripe,  # noqa: F811
):
    payment = _open_checkout(page, live_server)
    _fill_card(page, DECLINED_CARD)
    button = page.locator("#checkout-submit")
    button.click()
    alert = page.locator("#checkout-errors")
    expect(alert).to_be_visible()
    expect(alert).to_have_attribute("role", "alert")
    expect(alert).to_contain_text("declined")
    expect(alert).to_be_focused()
    expect(button).to_be_enabled()
    assert page.url.endswith(reverse("payments:checkout", args=[payment.appointment.public_id]))
    payment.refresh_from_db()
    assert payment.status != PaymentStatus.SUCCEEDED
    assert not FiscalReceipt.objects.exists()
    assert_accessible(page)
    # The only console line is the browser noting the 402 of our confirm endpoint.
    console.assert_clean(allow=("status of 402",))


def test_3d_secure_is_completed_in_the_banks_dialog(live_server, page: Page, localstripe):  # noqa: F811
    payment = _open_checkout(page, live_server)
    _fill_card(page, THREE_D_SECURE_CARD)
    page.locator("#checkout-submit").click()
    # localstripe's stand-in for the bank's page.
    page.get_by_role("button", name="Complete authentication").click()
    expect(page).to_have_url(
        re.compile(re.escape(reverse("payments:payment_detail", args=[payment.public_id])) + "$")
    )
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED


# --- the Stripe.js path (Payment Element + confirmPayment), with a stand-in Stripe.js -------

FAKE_STRIPE_JS = """
(function () {
  window.__stripeCalls = [];
  window.Stripe = function (key, options) {
    window.__stripeCalls.push(["Stripe", key, options && options.locale]);
    return {
      elements: function (opts) {
        window.__stripeCalls.push(["elements", opts && opts.clientSecret]);
        return {
          create: function (type) {
            window.__stripeCalls.push(["create", type]);
            return {
              mount: function (el) {
                var label = document.createElement("p");
                label.textContent = "Stand-in Payment Element";
                el.appendChild(label);
              }
            };
          }
        };
      },
      confirmPayment: function (args) {
        window.__stripeCalls.push([
          "confirmPayment", args.confirmParams.return_url, args.redirect, !!args.elements
        ]);
        return Promise.resolve(window.__nextConfirm || {paymentIntent: {status: "succeeded"}});
      }
    };
  };
})();
"""


@pytest.fixture
def fake_stripe_js(settings):
    """Serves a stand-in for Stripe's own Stripe.js (one with confirmPayment), recording
    how checkout.js calls it; STRIPE_JS_URL points at it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = FAKE_STRIPE_JS.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/javascript")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.STRIPE_JS_URL = f"http://127.0.0.1:{server.server_address[1]}/v3/"
    yield settings.STRIPE_JS_URL
    server.shutdown()
    server.server_close()


def test_with_stripes_own_script_the_payment_element_confirms_and_returns(
    live_server,
    page: Page,
    localstripe,  # noqa: F811
    fake_stripe_js,
):
    clinic = make_paid_clinic()
    patient = factories.make_patient(language="en")
    held = clinic.hold(patient)
    sign_in(page, patient.email)
    page.goto(reverse("payments:checkout", args=[held.public_id]))
    expect(page.get_by_text("Stand-in Payment Element")).to_be_visible()
    payment = Payment.objects.get(appointment=held)
    calls = page.evaluate("() => window.__stripeCalls")
    assert calls[0][:2] == ["Stripe", "pk_test_localstripe"]
    assert calls[1][0] == "elements" and calls[1][1].startswith(payment.provider_payment_id)
    assert calls[2] == ["create", "payment"]

    # A card error from Stripe.js is shown as Stripe worded it; nothing else happens.
    page.evaluate(
        """() => { window.__nextConfirm = {error: {type: "card_error",
        message: "Your card has insufficient funds."}}; }"""
    )
    button = page.locator("#checkout-submit")
    button.click()
    expect(page.locator("#checkout-errors")).to_have_text("Your card has insufficient funds.")
    expect(button).to_be_enabled()
    return_url = page.evaluate("() => window.__stripeCalls[3][1]")
    assert return_url.endswith(reverse("payments:payment_detail", args=[payment.public_id]))
    assert page.evaluate("() => window.__stripeCalls[3].slice(2)") == ["if_required", True]

    # Stripe confirms the card (here: localstripe, as Stripe.js would have); the page
    # goes to the return URL, which reads the payment from Stripe.
    token = localstripe.create_token(GOOD_CARD)["id"]
    from payments.gateway import gateway

    gateway().confirm_with_card_token(payment.provider_payment_id, token)
    page.evaluate("() => { window.__nextConfirm = null; }")
    button.click()
    expect(page).to_have_url(re.compile(re.escape(return_url) + "$"))
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
