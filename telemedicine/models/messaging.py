"""Secure messaging between a patient and the care team."""
