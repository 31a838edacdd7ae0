"""Access-matrix rows for the payments pages (loaded by tests/test_access_matrix.py).

A patient pays and sees only their own; reception and admins see a patient's payments at
the desk and send invoices; a doctor sees only their own earnings, as totals. Checkout
pages are tried with booked appointments and paid invoices, which lead on (302) without
calling the payment provider. Every refusal is a recorded 404.
"""

from __future__ import annotations

from decimal import Decimal

from tests.test_access_matrix import Rule, only

DESK = ("reception", "admin")


def _appointment(world: dict, role: str, target: str) -> list:
    appointments = world["appointments"]
    chosen = appointments["own"][role] if target == "own" else appointments["other"]
    return [chosen.public_id]


def _payment_of(world: dict, appointment) -> object:  # noqa: ANN001
    from payments.models import Payment, PaymentStatus

    made = world.setdefault("payments", {})
    if appointment.pk not in made:
        made[appointment.pk] = Payment.objects.create(
            patient_id=appointment.patient_id,
            appointment=appointment,
            doctor_id=appointment.doctor_id,
            amount=Decimal("100.00"),
            status=PaymentStatus.SUCCEEDED,
            provider_payment_id=f"pi_matrix_{appointment.pk}",
        )
    return made[appointment.pk]


def _payment(world: dict, role: str, target: str) -> list:
    appointments = world["appointments"]
    chosen = appointments["own"][role] if target == "own" else appointments["other"]
    return [_payment_of(world, chosen).public_id]


def _paid_invoice(world: dict, role: str, target: str) -> list:
    from payments.models import Invoice, InvoiceStatus

    appointments = world["appointments"]
    chosen = appointments["own"][role] if target == "own" else appointments["other"]
    invoice, _ = Invoice.objects.get_or_create(
        number=f"INV-M-{chosen.pk}",
        defaults={
            "patient_id": chosen.patient_id,
            "appointment": chosen,
            "description": "Consultation",
            "amount": Decimal("100.00"),
            "status": InvoiceStatus.PAID,
        },
    )
    return [invoice.public_id]


MATRIX = {
    "payments:history": Rule(False, only("patient")),
    "payments:invoices": Rule(False, only("patient")),
    "payments:earnings": Rule(False, only("doctor")),
    "payments:checkout": Rule(True, own=only("patient"), other=only(), args=_appointment),
    "payments:insurance": Rule(True, own=only("patient"), other=only(), args=_appointment),
    "payments:invoice_pay": Rule(True, own=only("patient"), other=only(), args=_paid_invoice),
    "payments:payment_detail": Rule(
        True, own=only("patient", *DESK), other=only(*DESK), args=_payment
    ),
    "payments:confirm_card": Rule(True, own=only("patient"), other=only(), args=_payment),
    "payments:invoice_new": Rule(True, own=only(*DESK), other=only(*DESK), args=_appointment),
    "payments:insurance_checked": Rule(True, own=only(*DESK), other=only(*DESK), args=_appointment),
}
