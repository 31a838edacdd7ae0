"""Revenue in admin (by doctor, consultation type and month, for a period) and a doctor's
own earnings: money in less money back, counted on the day it moved, in two queries."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from accounts.models import Role
from payments import selectors
from payments.models import Payment, PaymentStatus, Refund, RefundStatus
from tests import factories
from tests.payments.helpers import make_paid_clinic

MSK = ZoneInfo("Europe/Moscow")


def _paid(clinic, patient, amount: str, when: datetime, *, index: int = 0) -> Payment:  # noqa: ANN001
    appointment = clinic.hold(patient, index=index)
    return Payment.objects.create(
        patient=patient.patient_profile,
        appointment=appointment,
        doctor=clinic.doctor,
        consultation_type=clinic.ctype,
        amount=Decimal(amount),
        status=PaymentStatus.SUCCEEDED,
        succeeded_at=when,
        provider_payment_id=f"pi_report_{appointment.pk}",
    )


def _refunded(payment: Payment, amount: str, when: datetime) -> Refund:
    return Refund.objects.create(
        payment=payment,
        amount=Decimal(amount),
        reason="admin",
        key=f"r-{payment.pk}-{amount}",
        status=RefundStatus.SUCCEEDED,
        succeeded_at=when,
    )


@pytest.fixture
def ledger(db):
    """Two doctors; payments in October and November; a refund in November of an
    October payment; a failed payment and one outside the period that never count."""
    first = make_paid_clinic()
    second = make_paid_clinic(price=Decimal("4000.00"), code="second-type")
    second.doctor = factories.make_staff(Role.DOCTOR, full_name="Ivan Sidorov", language="en")
    factories.make_working_week(second.doctor, second.location, start="08:00", end="20:00")
    second.ctype.doctors.set([second.doctor])
    patient = factories.make_patient(language="en")
    october = datetime(2026, 10, 15, 12, tzinfo=MSK)
    november = datetime(2026, 11, 10, 12, tzinfo=MSK)
    a = _paid(first, patient, "2500.00", october, index=0)
    _paid(first, patient, "2500.00", november, index=1)
    _paid(second, patient, "4000.00", november, index=0)
    _refunded(a, "1000.00", november)
    failed = _paid(first, patient, "999.00", november, index=2)
    Payment.objects.filter(pk=failed.pk).update(status=PaymentStatus.FAILED)
    _paid(first, patient, "777.00", datetime(2026, 9, 1, 12, tzinfo=MSK), index=3)
    return first, second


def test_revenue_by_doctor_consultation_type_and_month(ledger, django_assert_max_num_queries):
    first, second = ledger
    start, end = datetime(2026, 10, 1).date(), datetime(2026, 11, 30).date()
    with django_assert_max_num_queries(3):
        by_doctor = selectors.revenue_report(date_from=start, date_to=end, group_by="doctor")
    rows = {r.key: (r.paid, r.refunded, r.net, r.payments) for r in by_doctor.rows}
    assert rows[first.doctor.pk] == (
        Decimal("5000.00"),
        Decimal("1000.00"),
        Decimal("4000.00"),
        2,
    )
    assert rows[second.doctor.pk] == (Decimal("4000.00"), Decimal("0"), Decimal("4000.00"), 1)
    assert by_doctor.total.net == Decimal("8000.00")

    by_type = selectors.revenue_report(date_from=start, date_to=end, group_by="consultation_type")
    assert {r.key: r.net for r in by_type.rows} == {
        first.ctype.pk: Decimal("4000.00"),
        second.ctype.pk: Decimal("4000.00"),
    }
    by_month = selectors.revenue_report(date_from=start, date_to=end, group_by="month")
    assert [(r.key.month, r.paid, r.refunded) for r in by_month.rows] == [
        (10, Decimal("2500.00"), Decimal("0")),
        (11, Decimal("6500.00"), Decimal("1000.00")),
    ]
    # The refund counts in the month the money went back, not the payment's month.
    november_only = selectors.revenue_report(
        date_from=datetime(2026, 11, 1).date(), date_to=end, group_by="doctor"
    )
    assert {r.key: r.net for r in november_only.rows}[first.doctor.pk] == Decimal("1500.00")


def test_admin_revenue_page_and_csv(client, ledger, admin_user, login_staff):
    first, _second = ledger
    login_staff(admin_user)
    url = reverse("admin:payments_payment_revenue")
    page = client.get(
        url, {"date_from": "2026-10-01", "date_to": "2026-11-30", "group_by": "doctor"}
    )
    html = page.content.decode()
    assert page.status_code == 200 and "Olga Petrova" in html and "Ivan Sidorov" in html
    csv = client.get(
        url,
        {"date_from": "2026-10-01", "date_to": "2026-11-30", "group_by": "doctor", "format": "csv"},
    )
    body = b"".join(csv.streaming_content).decode()
    assert "Olga Petrova,2,5000.00,1,1000.00,4000.00,RUB" in body
    bad = client.get(url, {"date_from": "2026-11-30", "date_to": "2026-10-01"})
    assert "The period ends before it starts" in bad.content.decode()


def test_a_doctor_sees_only_their_own_earnings(client, ledger, login_staff):
    first, second = ledger
    login_staff(first.doctor)
    page = client.get(
        reverse("payments:earnings"),
        {"date_from": "2026-10-01", "date_to": "2026-11-30", "group_by": "consultation_type"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "4,000.00 RUB" in html or "4 000,00 RUB" in html or "4000.00 RUB" in html
    assert "Ivan Sidorov" not in html and "8,000.00" not in html and "8000.00" not in html
    # Revenue of the whole clinic is for admins.
    assert client.get(reverse("admin:payments_payment_revenue")).status_code in (302, 403)
