"""Fixtures for payments' tests.

- `localstripe_server` (session) / `localstripe` (function): localstripe, the fake
  Stripe, on loopback, with the STRIPE_* settings pointing at it; see
  tests/payments/localstripe.py.
- `fake_atol` (function): a fake ATOL Online (fiscal receipts) on loopback, with
  FISCAL_PROVIDER and the ATOL_* settings pointing at it; see tests/payments/fake_atol.py.
"""

from __future__ import annotations

import pytest

from tests.payments.fake_atol import FakeAtol
from tests.payments.localstripe import localstripe, localstripe_server  # noqa: F401


@pytest.fixture
def fake_atol(settings):
    """A fresh fake ATOL Online (a document waits one report before it is done), and
    the portal's fiscal settings pointing at it."""
    fake = FakeAtol().start()
    settings.FISCAL_PROVIDER = "atol"
    settings.ATOL_BASE_URL = fake.url
    settings.ATOL_LOGIN = fake.login
    settings.ATOL_PASSWORD = fake.password
    settings.ATOL_GROUP_CODE = fake.group_code
    settings.ATOL_COMPANY_INN = fake.inn
    settings.ATOL_COMPANY_EMAIL = fake.company_email
    settings.ATOL_PAYMENT_ADDRESS = "https://portal.clinic.example"
    settings.ATOL_SNO = "usn_income"
    settings.ATOL_TIMEOUT_SECONDS = 1.5
    try:
        yield fake
    finally:
        fake.stop()
