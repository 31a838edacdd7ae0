"""Hook points for apps above scheduling (payments, notifications, telemedicine, mis).

Scheduling's services call these; higher apps register handlers in their
`AppConfig.ready()`. Not Django signals: `fire` runs every handler inside the
caller's transaction (a failing handler fails the service), `fire_on_commit` runs
them after the commit (for side effects outside the database, such as queuing tasks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

Handler = Callable[..., Any]


@dataclass
class Hook:
    name: str
    handlers: list[Handler] = field(default_factory=list)

    def register(self, handler: Handler) -> Handler:
        if handler not in self.handlers:
            self.handlers.append(handler)
        return handler

    def unregister(self, handler: Handler) -> None:
        if handler in self.handlers:
            self.handlers.remove(handler)

    def fire(self, **kwargs: Any) -> None:
        for handler in list(self.handlers):
            handler(**kwargs)

    def collect(self, **kwargs: Any) -> list[Any]:
        """Every handler's answer, in order (for hooks that ask rather than tell)."""
        return [handler(**kwargs) for handler in list(self.handlers)]

    def fire_on_commit(self, **kwargs: Any) -> None:
        for handler in list(self.handlers):
            transaction.on_commit(lambda h=handler: h(**kwargs))


# Each is called with appointment_id=... (and the keyword arguments noted).
appointment_held = Hook("appointment_held")
appointment_booked = Hook("appointment_booked")
# cancellation_fee=Decimal, by_clinic=bool, free=bool
appointment_cancelled = Hook("appointment_cancelled")
# previous_start=datetime
appointment_rescheduled = Hook("appointment_rescheduled")
# previous_status=str, status=str
appointment_status_changed = Hook("appointment_status_changed")
appointment_hold_released = Hook("appointment_hold_released")
# offer_id=... (inside the offering transaction)
waitlist_offer_made = Hook("waitlist_offer_made")

# Asked, not told: user=, appointment=, audience="patient"|"staff"; each handler returns
# an HTML section (rendered with the app's own template, already escaped) or "" for the
# appointment's page. Lets higher apps show their state (reminders sent, payment) there.
appointment_page_sections = Hook("appointment_page_sections")

# Asked, not told: appointment=; a handler returns the URL of the page where the patient
# pays for a held appointment (payments' checkout), or "" when it has none.
appointment_checkout_url = Hook("appointment_checkout_url")
