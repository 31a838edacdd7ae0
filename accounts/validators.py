"""Validators for identity documents, phones and passwords."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy


def snils_digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def snils_checksum(first_nine: str) -> int:
    """SNILS control number: digits weighted 9..1, sum mod 101, 100 -> 0."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(9, 0, -1), strict=True))
    if total < 100:
        return total
    if total in (100, 101):
        return 0
    remainder = total % 101
    return 0 if remainder == 100 else remainder


def validate_snils(value: str) -> None:
    if not value:
        return
    digits = snils_digits(value)
    if len(digits) != 11 or not re.fullmatch(r"[\d\s-]+", value):
        raise ValidationError(
            _("SNILS has 11 digits, for example 112-233-445 95."), code="snils_format"
        )
    # The checksum rule applies to numbers above 001-001-998.
    if int(digits[:9]) > 1001998 and snils_checksum(digits[:9]) != int(digits[9:]):
        raise ValidationError(
            _("This SNILS number is not valid: its check digits do not match."),
            code="snils_checksum",
        )


def format_snils(value: str) -> str:
    d = snils_digits(value)
    return f"{d[0:3]}-{d[3:6]}-{d[6:9]} {d[9:11]}" if len(d) == 11 else value


def validate_passport(value: str) -> None:
    """Russian internal passport: 4-digit series and 6-digit number."""
    if not value:
        return
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) != 10 or not re.fullmatch(r"[\d\s№-]+", value):
        raise ValidationError(
            _("Enter the passport series (4 digits) and number (6 digits), e.g. 4510 123456."),
            code="passport_format",
        )


def format_passport(value: str) -> str:
    d = "".join(ch for ch in value if ch.isdigit())
    return f"{d[:4]} {d[4:]}" if len(d) == 10 else value


def validate_phone(value: str) -> None:
    if not value:
        return
    digits = "".join(ch for ch in value if ch.isdigit())
    if not re.fullmatch(r"\+?[\d\s()-]+", value) or not 10 <= len(digits) <= 15:
        raise ValidationError(
            _("Enter a phone number with country code, e.g. +7 912 345-67-89."), code="phone"
        )


_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890", "йцукенгшщзхъ", "фывапролджэ")
_COMMON_WORDS = (
    "password",
    "passw0rd",
    "qwerty",
    "letmein",
    "welcome",
    "admin",
    "clinic",
    "doctor",
    "patient",
    "iloveyou",
    "monkey",
    "dragon",
    "sunshine",
    "пароль",
    "привет",
)


_LEET = str.maketrans(
    {"@": "a", "0": "o", "1": "i", "3": "e", "$": "s", "5": "s", "!": "i", "7": "t"}
)


class WeakPatternPasswordValidator:
    """Refuses the shapes breached-password lists are full of, beyond Django's
    common-password list: keyboard walks, one repeated character, a common word
    padded with digits and symbols, and long runs of consecutive characters."""

    def validate(self, password: str, user: object = None) -> None:
        lowered = password.lower()
        # "P@ssw0rd" is "password": undo common substitutions before stripping padding.
        unleeted = re.sub(r"[\d\W_]+$|^[\d\W_]+", "", lowered).translate(_LEET)
        core = re.sub(r"[\d\W_]+", "", unleeted)
        if len(set(lowered)) <= 3:
            raise ValidationError(
                gettext_lazy("This password repeats too few characters."),
                code="password_repetitive",
            )
        if core and any(core == w or core == w * 2 for w in _COMMON_WORDS):
            raise ValidationError(
                gettext_lazy("This password is a common word with digits or symbols added."),
                code="password_common_pattern",
            )
        for row in _KEYBOARD_ROWS:
            for start in range(len(row) - 5):
                if row[start : start + 6] in lowered or row[start : start + 6][::-1] in lowered:
                    raise ValidationError(
                        gettext_lazy("This password contains a keyboard sequence."),
                        code="password_keyboard",
                    )
        run = 1
        for prev, cur in zip(lowered, lowered[1:], strict=False):
            run = run + 1 if ord(cur) - ord(prev) == 1 else 1
            if run >= 6:
                raise ValidationError(
                    gettext_lazy("This password contains a long run of consecutive characters."),
                    code="password_sequence",
                )

    def get_help_text(self) -> str:
        return _(
            "Avoid keyboard sequences, repeated characters and common words with digits added."
        )
