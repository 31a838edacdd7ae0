"""django-axes with allauth's email login (DESIGN.md: axes sees no username otherwise)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def username_from_request(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    value = ""
    if credentials:
        value = (
            credentials.get("email")
            or credentials.get("username")
            or credentials.get("login")
            or ""
        )
    if not value and request is not None and request.method == "POST":
        value = request.POST.get("login", "")
    # Normalised so "A@x.ru" and "a@x.ru " count as one account.
    return str(value).strip().lower()
