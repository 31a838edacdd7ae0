"""Hook points for apps above records (notifications, mis).

Records' services call these; higher apps register handlers in their
`AppConfig.ready()` (the same style as scheduling/hooks.py). Not Django signals: `fire`
runs every handler inside the caller's transaction (a failing handler fails the
service), `fire_on_commit` runs them after the commit (for side effects outside the
database, such as queuing a "your results are ready" message).

Handlers receive ids only, never values: a message about results must not carry them
(DESIGN.md rule 6).
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

    def fire_on_commit(self, **kwargs: Any) -> None:
        for handler in list(self.handlers):
            transaction.on_commit(lambda h=handler: h(**kwargs))


# A lab report became visible to its patient (fired on commit):
# report_id=int, patient_user_id=int.
results_released = Hook("results_released")
# A visit was signed and released to its patient (fired on commit):
# visit_id=int, patient_user_id=int.
visit_released = Hook("visit_released")
# A prescription renewal request changed state (fired on commit, for every change,
# submission included): renewal_id=int, patient_user_id=int, status=str. The message
# says "there is news about your prescription request", never the medication.
prescription_status_changed = Hook("prescription_status_changed")
# An upcoming appointment's intake form is missing or unfinished and its one reminder is
# due (fired on commit by `intake_forms_due_reminders`): appointment_id=int,
# patient_user_id=int.
intake_form_reminder_due = Hook("intake_form_reminder_due")
# A document became available to its patient (fired on commit): a clinic PDF finished
# rendering for a released document, or a document was released. document_id=int,
# patient_user_id=int. The message says "a new document is in your portal", never its
# title or content.
document_ready = Hook("document_ready")
