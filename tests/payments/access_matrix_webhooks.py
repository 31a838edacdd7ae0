"""Access-matrix rows for Stripe's webhook (loaded by tests/test_access_matrix.py).

It opens without signing in: the Stripe-Signature (HMAC with STRIPE_WEBHOOK_SECRET,
five minutes either way) is the credential, and the answer shows nothing but an
outcome word. tests/payments/test_webhooks.py attacks it (forged, re-signed, stale,
future and malformed deliveries).
"""

NOT_PERSONAL = {"payments:stripe_webhook"}
