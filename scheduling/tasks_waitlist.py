"""Waitlist and queue tasks (offer expiry sweep)."""
