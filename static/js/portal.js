/*
 * Clinic portal: the little behaviour the pages need. Loaded with `defer` from
 * base.html. The CSP allows no inline script and no eval, so all behaviour lives in
 * files like this one and is wired to markup through data-* attributes.
 */
(function () {
  "use strict";

  // Move focus to an element marked data-focus-on-load (the form error summary), so a
  // screen reader reads the problem first and keyboard users start from it.
  function focusOnLoad(root) {
    var target = (root || document).querySelector("[data-focus-on-load]");
    if (target) {
      if (!target.hasAttribute("tabindex")) {
        target.setAttribute("tabindex", "-1");
      }
      target.focus();
    }
  }

  // <form data-submit-once>: disable its submit buttons after the first submit so a
  // slow network cannot book or pay twice. The server is still the one that decides.
  function guardDoubleSubmit(event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-submit-once")) {
      return;
    }
    if (form.getAttribute("data-submitting") === "true") {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-submitting", "true");
    form.setAttribute("aria-busy", "true");
    window.setTimeout(function () {
      form.querySelectorAll("button[type=submit], input[type=submit]").forEach(function (b) {
        b.disabled = true;
      });
    }, 0);
  }

  var SVG_NS = "http://www.w3.org/2000/svg";

  function svgElement(name, attrs) {
    var el = document.createElementNS(SVG_NS, name);
    Object.keys(attrs).forEach(function (key) {
      el.setAttribute(key, attrs[key]);
    });
    return el;
  }

  // The same decorative icon as templates/_messages.html uses for errors.
  function errorIcon() {
    var svg = svgElement("svg", {
      "class": "portal-icon", viewBox: "0 0 16 16", "aria-hidden": "true", focusable: "false"
    });
    svg.appendChild(svgElement("circle", { cx: "8", cy: "8", r: "7.5", fill: "currentColor" }));
    svg.appendChild(svgElement("path", {
      d: "M5.2 5.2l5.6 5.6M10.8 5.2l-5.6 5.6", stroke: "#fff", "stroke-width": "1.8",
      "stroke-linecap": "round"
    }));
    return svg;
  }

  // A failed htmx request: say so in words (with an icon), in the messages region.
  function showRequestError() {
    var region = document.getElementById("messages");
    if (!region) {
      return;
    }
    var text = document.body.getAttribute("data-htmx-error-text") || "Something went wrong.";
    var label = document.body.getAttribute("data-error-label") || "Error:";
    var box = document.createElement("div");
    box.className = "alert alert-danger";
    box.setAttribute("role", "alert");
    box.appendChild(errorIcon());
    var strong = document.createElement("strong");
    strong.textContent = label + " ";
    var span = document.createElement("span");
    span.className = "portal-message-text";
    span.appendChild(strong);
    span.appendChild(document.createTextNode(text));
    box.appendChild(span);
    region.replaceChildren(box);
  }

  document.addEventListener("DOMContentLoaded", function () {
    focusOnLoad(document);
  });
  document.addEventListener("submit", guardDoubleSubmit, true);
  document.body.addEventListener("htmx:responseError", showRequestError);
  document.body.addEventListener("htmx:sendError", showRequestError);
  // Content swapped in by htmx may bring its own error summary.
  document.body.addEventListener("htmx:afterSwap", function (event) {
    focusOnLoad(event.target);
  });
})();
