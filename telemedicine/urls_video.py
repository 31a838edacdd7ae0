"""Telemedicine URLs: video."""

urlpatterns: list = []
