"""Booking tasks (confirmation email with .ics)."""
