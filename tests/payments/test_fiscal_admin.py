"""Fiscal receipts in Django admin: viewable (and the view audited), not editable, and
"send again now" goes through the service."""

from __future__ import annotations

import pytest

from audit.models import AuditAction, AuditEvent
from payments.models import FiscalReceipt, ReceiptState
from payments.services_fiscal import receipt_create_for_payment, receipt_send
from tests.payments.test_fiscal_receipts import make_payment, published  # noqa: F401

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/payments/fiscalreceipt/"


def test_admin_retries_a_failed_receipt(client, login_staff, admin_user, fake_atol, published):  # noqa: F811
    fake_atol.reject_documents()
    failed = receipt_send(receipt_id=receipt_create_for_payment(payment=make_payment()).pk)
    done_one = receipt_create_for_payment(payment=make_payment())
    fake_atol.reject_text = ""
    for _ in range(3):
        done_one = receipt_send(receipt_id=done_one.pk, now=done_one.next_attempt_at)
    assert (failed.state, done_one.state) == (ReceiptState.FAILED, ReceiptState.DONE)
    published.clear()

    login_staff(admin_user)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.VIEW, object_type="payments.fiscalreceipt"
    ).exists()
    response = client.post(
        CHANGELIST,
        {"action": "retry_now", "_selected_action": [failed.pk, done_one.pk]},
        HTTP_ACCEPT_LANGUAGE="en",
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "queued for the operator: 1" in text
    assert "already fiscalised" in text
    failed.refresh_from_db()
    done_one.refresh_from_db()
    assert failed.state == ReceiptState.PENDING and done_one.state == ReceiptState.DONE
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.CHANGE, object_id=str(failed.pk)
    ).exists()


def test_receipts_are_not_edited_in_admin(client, login_staff, admin_user, fake_atol, published):  # noqa: F811
    receipt = receipt_create_for_payment(payment=make_payment())
    login_staff(admin_user)
    url = f"{CHANGELIST}{receipt.pk}/change/"
    assert client.get(url).status_code == 200
    client.post(url, {"amount": "1.00", "state": "done"})
    receipt.refresh_from_db()
    assert receipt.state == ReceiptState.PENDING and str(receipt.amount) == "2500.00"
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert client.post(f"{CHANGELIST}{receipt.pk}/delete/", {"post": "yes"}).status_code == 403
    assert FiscalReceipt.objects.filter(pk=receipt.pk).exists()
