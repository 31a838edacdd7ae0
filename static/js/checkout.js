/*
 * Card checkout (payments/patient/checkout.html). No inline code: everything comes from
 * data attributes on the checkout form (strict CSP).
 *
 *   <form id="checkout-form"                 (or any form[data-client-secret])
 *         data-publishable-key="pk_..."      Stripe publishable key
 *         data-client-secret="pi_..._secret_..."
 *         data-confirm-url="/payments/<id>/confirm-card/"   our server-side confirm (token path)
 *         data-return-url="https://.../payments/<id>/"       where to go when done
 *         data-stripe-js="https://js.stripe.com/v3/"        optional: loaded here if the page
 *                                                          did not load Stripe.js itself
 *         data-error-generic="..." data-working="..."       translated texts
 *         data-error-incomplete="..."                       optional: card details missing
 *         data-label-number="..." data-label-exp-month="..." data-label-exp-year="..."
 *         data-label-cvc="..." data-label-postal-code="..." optional: labels for the test
 *                                                          card fields of localstripe
 *     {% csrf_token %}
 *     <div id="payment-element"> (or [data-payment-element]) where the card fields go
 *     <div id="checkout-errors" role="alert" tabindex="-1" class="d-none">
 *     <p id="checkout-progress" aria-live="polite">
 *     <button type="submit">
 *
 * Two paths, chosen by what Stripe.js offers:
 *  - Stripe's own Stripe.js (stripe.confirmPayment exists): a Payment Element, then
 *    stripe.confirmPayment({elements, confirmParams: {return_url}, redirect: "if_required"});
 *    Stripe redirects itself when the bank needs a page of its own.
 *  - localstripe's test Stripe.js (no confirmPayment): its card element, createToken, the
 *    token POSTed to data-confirm-url (CSRF header from the form's hidden input); the JSON
 *    answer {status, redirect, client_secret} or {error}; on "requires_action"
 *    stripe.confirmCardPayment(client_secret) finishes 3-D Secure.
 * Then the page goes to the return URL, which shows the payment as the server knows it.
 */
(function () {
  "use strict";

  var form = document.getElementById("checkout-form") ||
    document.querySelector("form[data-client-secret]");
  if (!form) {
    return;
  }

  var data = form.dataset;
  var mount = form.querySelector("[data-payment-element]") ||
    document.getElementById("payment-element");
  var errorBox = document.getElementById("checkout-errors") ||
    form.querySelector("[role=alert]");
  var progress = document.getElementById("checkout-progress") ||
    form.querySelector("[aria-live]");
  var button = form.querySelector("button[type=submit], button:not([type])");
  var returnUrl = data.returnUrl || window.location.href;
  var genericError = data.errorGeneric ||
    "The payment could not be made. Nothing was charged. Please try again.";
  var FAKE_FIELD_LABELS = {
    number: data.labelNumber || "Card number",
    exp_month: data.labelExpMonth || "Expiry month (MM)",
    exp_year: data.labelExpYear || "Expiry year (YY)",
    cvc: data.labelCvc || "Security code (CVC)",
    postal_code: data.labelPostalCode || "Postal code"
  };

  var stripe = null;
  var elements = null;
  var cardElement = null;
  var usePaymentElement = false;
  var working = false;

  function showError(message) {
    if (!errorBox) {
      return;
    }
    errorBox.textContent = message || genericError;
    errorBox.classList.remove("d-none");
    errorBox.hidden = false;
    if (!errorBox.hasAttribute("tabindex")) {
      errorBox.setAttribute("tabindex", "-1");
    }
    errorBox.focus();
  }

  function clearError() {
    if (errorBox) {
      errorBox.textContent = "";
      errorBox.classList.add("d-none");
    }
  }

  function setWorking(on) {
    working = on;
    if (button) {
      button.disabled = on;
      button.setAttribute("aria-disabled", on ? "true" : "false");
    }
    form.setAttribute("aria-busy", on ? "true" : "false");
    if (progress) {
      progress.textContent = on ? (data.working || "") : "";
    }
  }

  function finish(url) {
    window.location.assign(url || returnUrl);
  }

  function csrfToken() {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  // The test Stripe.js draws bare inputs named only by placeholders: give each a label
  // for screen readers (placeholders are not labels).
  function labelFakeFields() {
    if (!mount) {
      return;
    }
    var inputs = mount.querySelectorAll("input");
    for (var i = 0; i < inputs.length; i++) {
      var input = inputs[i];
      var name = input.getAttribute("placeholder") || "";
      if (!input.hasAttribute("aria-label") && FAKE_FIELD_LABELS[name]) {
        input.setAttribute("aria-label", FAKE_FIELD_LABELS[name]);
        input.setAttribute("name", "card-" + name);
        input.setAttribute("autocomplete", "off");
        input.setAttribute("inputmode", "numeric");
      }
    }
  }

  function setUp() {
    if (typeof window.Stripe !== "function") {
      showError(genericError);
      if (button) {
        button.disabled = true;
      }
      return;
    }
    var locale = (document.documentElement.lang || "auto").slice(0, 2);
    stripe = window.Stripe(data.publishableKey, { locale: locale });
    usePaymentElement = typeof stripe.confirmPayment === "function";
    if (usePaymentElement) {
      elements = stripe.elements({ clientSecret: data.clientSecret, locale: locale });
      cardElement = elements.create("payment", { layout: "tabs" });
    } else {
      elements = stripe.elements();
      cardElement = elements.create("card");
    }
    if (mount) {
      cardElement.mount(mount);
      if (!usePaymentElement) {
        labelFakeFields();
      }
    }
    form.addEventListener("submit", onSubmit);
  }

  function onSubmit(event) {
    event.preventDefault();
    if (working || !stripe) {
      return;
    }
    clearError();
    setWorking(true);
    var run = usePaymentElement ? payWithPaymentElement() : payWithToken();
    run.then(function (done) {
      if (!done) {
        setWorking(false);
      }
    }, function () {
      setWorking(false);
      showError(genericError);
    });
  }

  // Stripe's own Stripe.js.
  function payWithPaymentElement() {
    return stripe.confirmPayment({
      elements: elements,
      confirmParams: { return_url: returnUrl },
      redirect: "if_required"
    }).then(function (result) {
      if (result.error) {
        // Card and validation errors carry a message written for the payer (localised
        // by Stripe.js); anything else gets ours.
        var type = result.error.type;
        showError(type === "card_error" || type === "validation_error" ?
          result.error.message : genericError);
        return false;
      }
      finish(returnUrl);
      return true;
    });
  }

  // localstripe's test Stripe.js: token -> our server confirms.
  function payWithToken() {
    if (!cardElement.value || !cardElement.value.card || !cardElement.value.card.number) {
      showError(data.errorIncomplete || genericError);
      return Promise.resolve(false);
    }
    return stripe.createToken(cardElement).then(function (result) {
      if (!result || result.error || !result.token) {
        showError(data.errorIncomplete || genericError);
        return false;
      }
      var body = new URLSearchParams();
      body.append("token", result.token.id);
      return fetch(data.confirmUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "X-CSRFToken": csrfToken(),
          "X-Requested-With": "XMLHttpRequest",
          "Accept": "application/json"
        },
        body: body
      }).then(function (response) {
        return response.json().catch(function () {
          return {};
        }).then(function (answer) {
          if (!response.ok || answer.error) {
            showError(answer.error || genericError);
            return false;
          }
          if (answer.status === "requires_action") {
            return stripe.confirmCardPayment(answer.client_secret || data.clientSecret)
              .then(function (confirmed) {
                if (confirmed.error) {
                  showError(genericError);
                  return false;
                }
                finish(answer.redirect);
                return true;
              });
          }
          finish(answer.redirect);
          return true;
        });
      });
    });
  }

  function loadStripeJs(src, onLoad) {
    var script = document.createElement("script");
    script.src = src;
    var current = document.currentScript;
    if (current && current.nonce) {
      script.nonce = current.nonce;
    }
    script.addEventListener("load", onLoad);
    script.addEventListener("error", function () {
      showError(genericError);
      if (button) {
        button.disabled = true;
      }
    });
    document.head.appendChild(script);
  }

  if (typeof window.Stripe !== "function" && data.stripeJs) {
    loadStripeJs(data.stripeJs, setUp);
  } else {
    setUp();
  }
})();
