"""Payments' section on an appointment's page (patient's and staff's), rendered through
scheduling's `appointment_page_sections` hook."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from accounts import policies
from payments.selectors import money_for_appointment


def appointment_money_section(*, user: Any, appointment: Any, audience: str) -> str:
    if audience == "staff" and not policies.can_view_payments_of(user, appointment.patient):
        # A doctor sees that a visit is insured or paid, not the money trail.
        money = money_for_appointment(appointment)
        if money.empty:
            return ""
        return render_to_string(
            "payments/_appointment_section_doctor.html",
            {"money": money, "appointment": appointment},
        )
    money = money_for_appointment(appointment)
    needs_payment = (
        audience == "patient"
        and appointment.status == "held"
        and appointment.consultation_type.prepayment_required
    )
    if money.empty and not needs_payment and audience == "patient":
        return ""
    return render_to_string(
        "payments/_appointment_section.html",
        {
            "money": money,
            "appointment": appointment,
            "audience": audience,
            "needs_payment": needs_payment,
            "can_invoice": audience == "staff"
            and policies.can_issue_invoice(user, appointment.patient),
            "can_check": audience == "staff" and policies.can_check_insurance(user),
        },
    )
