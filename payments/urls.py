"""Payments URLs (names `payments:*`), mounted at /payments/."""

app_name = "payments"

urlpatterns: list = []
