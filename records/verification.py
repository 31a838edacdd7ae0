"""Verification codes printed on the clinic's PDFs.

Twelve characters of Crockford's base-32 (digits and upper-case letters without I, L, O
and U): 60 random bits, nothing derived from the patient or the document. Printed as
XXXX-XXXX-XXXX; read back case-insensitively, with dashes and spaces ignored and the
letters people confuse with digits (O, I, L) taken as those digits.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 12
_CONFUSED = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalize_code(value: str) -> str | None:
    """The stored form of a code someone typed, or None if it cannot be one."""
    text = "".join((value or "").split()).replace("-", "").upper().translate(_CONFUSED)
    if len(text) != LENGTH or any(ch not in ALPHABET for ch in text):
        return None
    return text


def display_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))
