/*
 * Booking pages: the free-time picker refreshes itself with htmx polling
 * (hx-trigger="every 12s" on [data-slot-poll]). This file only keeps that polite:
 *  - no refresh while focus is inside the picker, so a keyboard or screen-reader user
 *    never loses their place (the next poll after they leave catches up);
 *  - no refresh while the tab is hidden.
 * Loaded with a nonce from the booking templates; no inline code (strict CSP).
 */
(function () {
  "use strict";

  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-slot-poll")) {
      return;
    }
    var active = document.activeElement;
    if (document.hidden || (active && active !== document.body && elt.contains(active))) {
      event.preventDefault();
    }
  });
})();
