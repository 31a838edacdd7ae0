"""Telemedicine URLs: messaging."""

urlpatterns: list = []
