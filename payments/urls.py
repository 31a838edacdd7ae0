"""Payments URLs (names `payments:*`), mounted at /payments/. Appointments, invoices and
payments are named by public UUIDs."""

from django.urls import path

from payments.views import patient, staff
from payments.webhooks import stripe_webhook

app_name = "payments"

urlpatterns = [
    path("", patient.history, name="history"),
    path("invoices/", patient.invoices, name="invoices"),
    path("invoices/<uuid:public_id>/pay/", patient.invoice_pay, name="invoice_pay"),
    path("appointment/<uuid:public_id>/", patient.checkout, name="checkout"),
    path("appointment/<uuid:public_id>/insurance/", patient.insurance, name="insurance"),
    path("<uuid:public_id>/", patient.payment_detail, name="payment_detail"),
    path("<uuid:public_id>/confirm-card/", patient.confirm_card, name="confirm_card"),
    # Staff.
    path("staff/appointment/<uuid:public_id>/invoice/", staff.invoice_new, name="invoice_new"),
    path(
        "staff/appointment/<uuid:public_id>/insurance-checked/",
        staff.insurance_checked,
        name="insurance_checked",
    ),
    path("earnings/", staff.earnings, name="earnings"),
    # Stripe (signed, no sign-in): payments/webhooks.py.
    path("stripe/webhook/", stripe_webhook, name="stripe_webhook"),
]
