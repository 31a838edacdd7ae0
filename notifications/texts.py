"""What each event's message says, in the recipient's language.

Messages leave the portal, so they say only that something happened, when and where, and
where to look (DESIGN.md rule 6): never a diagnosis, a result, a medication, a doctor's
name or specialty, or the type of visit. tests/notifications check every event against
canary words on a real SMTP server.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from notifications.models import Event


@dataclass(frozen=True)
class EventText:
    subject: Promise
    line: Promise
    # URL name of the portal page the message points to ("" when the link is external).
    page: str


EVENT_TEXTS: dict[str, EventText] = {
    Event.BOOKING_CONFIRMED: EventText(
        _("Your appointment at %(clinic)s is booked"),
        _("Your appointment at %(clinic)s is booked."),
        "scheduling:my_appointments",
    ),
    Event.APPOINTMENT_MOVED: EventText(
        _("Your appointment at %(clinic)s has a new time"),
        _("Your appointment at %(clinic)s has moved to a new time."),
        "scheduling:my_appointments",
    ),
    Event.APPOINTMENT_CANCELLED: EventText(
        _("Your appointment at %(clinic)s is cancelled"),
        _(
            "The clinic has cancelled your appointment. We apologise. "
            "Open the portal to book another time."
        ),
        "scheduling:my_appointments",
    ),
    Event.WAITLIST_OFFER: EventText(
        _("A time has become free at %(clinic)s"),
        _(
            "A time you were waiting for has become free. It is held for you for a short "
            "while: open the portal to take it or let it go."
        ),
        "scheduling:waitlist",
    ),
    Event.RESULTS_READY: EventText(
        _("Your results are ready"),
        _("Your results are ready — open the portal."),
        "home",
    ),
    Event.PRESCRIPTION_STATUS: EventText(
        _("News about your prescription request"),
        _("There is news about your prescription request — open the portal."),
        "home",
    ),
    Event.FOLLOW_UP: EventText(
        _("Time to book a follow-up visit"),
        _("Your doctor invites you to a follow-up visit — open the portal to book a time."),
        "scheduling:book",
    ),
    Event.PAYMENT_RECEIPT: EventText(
        _("Your receipt from %(clinic)s"),
        _("Thank you for your payment. Your receipt is at the link below."),
        "",
    ),
    Event.REFUND_ISSUED: EventText(
        _("A refund from %(clinic)s"),
        _(
            "We have sent a refund to your card. Banks take up to a few days to show it. "
            "Open the portal to see its state and the receipt."
        ),
        "payments:history",
    ),
    Event.PAYMENT_TOO_LATE: EventText(
        _("Your booking at %(clinic)s was not made"),
        _(
            "Your payment arrived after the time we held for you had run out, so the "
            "booking was not made. We have refunded the payment in full. Open the portal "
            "to book another time."
        ),
        "payments:history",
    ),
    Event.INVOICE_ISSUED: EventText(
        _("An invoice from %(clinic)s"),
        _("The clinic has sent you an invoice — open the portal to pay it."),
        "payments:invoices",
    ),
    Event.DOCUMENT_READY: EventText(
        _("A document is ready"),
        _("A document you asked for is ready — open the portal."),
        "home",
    ),
    Event.VISIT_SUMMARY: EventText(
        _("Your visit summary is ready"),
        _("The summary of your visit is ready — open the portal."),
        "home",
    ),
    Event.INTAKE_FORM: EventText(
        _("Before your visit: a short form"),
        _(
            "Please fill in the short form before your visit — it saves time at the "
            "appointment. Open the portal."
        ),
        "scheduling:my_appointments",
    ),
    Event.NEW_MESSAGE: EventText(
        _("A new message from %(clinic)s"),
        _("You have a new message from the clinic — open the portal to read it."),
        "telemedicine:inbox",
    ),
}
