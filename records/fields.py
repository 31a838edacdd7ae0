"""Encrypted field types records needs beyond those in clinic/crypto.py.

`EncryptedDecimalField` stores a measured value as a Fernet token like every other
encrypted column (DESIGN.md rule 3: results are encrypted at rest). It is built on the
same strict mixin, so `manage.py reencrypt` finds it, an undecryptable value raises, and
only null checks are possible in SQL. Trends and flags are computed in Python after the
rows are loaded (and decrypted) by one query.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from clinic.crypto import StrictEncryptedMixin


class EncryptedDecimalField(StrictEncryptedMixin, models.DecimalField):
    """A Decimal encrypted at rest; the stored text is the canonical decimal string."""

    def get_prep_value(self, value: Any) -> Any:
        return StrictEncryptedMixin.get_prep_value(self, value)
