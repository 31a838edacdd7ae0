"""Telemedicine URLs: consult."""

urlpatterns: list = []
