"""Signed, expiring, single-use email verification links."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core import signing

from accounts.models import User

_SALT = "accounts.email-verification"


def _state(user: User) -> str:
    # Changes when the email is verified or changed, so a used link stops working.
    raw = f"{user.pk}|{user.email_index}|{user.email_verified_at}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def make_email_verification_token(user: User) -> str:
    return signing.TimestampSigner(salt=_SALT).sign_object({"u": user.pk, "s": _state(user)})


class InvalidToken(Exception):
    pass


def read_email_verification_token(token: str) -> tuple[int, str]:
    try:
        data = signing.TimestampSigner(salt=_SALT).unsign_object(
            token, max_age=settings.EMAIL_VERIFICATION_MAX_AGE
        )
    except signing.SignatureExpired as exc:
        raise InvalidToken("expired") from exc
    except signing.BadSignature as exc:
        raise InvalidToken("tampered") from exc
    return int(data["u"]), str(data["s"])


def token_matches_state(user: User, state: str) -> bool:
    return _state(user) == state
