"""Column encryption for personal and medical data (DESIGN.md rule 3).

The one wrapper over `encrypted_fields`. It keeps that package's storage format
(Fernet tokens, keys derived by PBKDF2 from SECRET_KEY(+fallbacks) x SALT_KEY) and
fixes what makes it unsafe for health data:

* A value that cannot be decrypted raises `UndecryptableValue` instead of quietly
  handing back the ciphertext, so a wrong or missing key fails loudly.
* Decryption happens only on the way out of the database (`from_db_value`), never in
  `to_python`, so the package's `_already_decrypted` flag on the shared field object
  (a race between threads) is not needed.
* Keys are derived once per process and key set, not once per field.

Exact lookups use a keyed blind index: `BlindIndexField(source="snils")` stores
HMAC-SHA256(BLIND_INDEX_KEY, normalised value), and `filter(snils="…")` on the
encrypted field compiles to a comparison on the index column.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Callable
from datetime import date
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models import Lookup
from django.db.models.expressions import Col
from encrypted_fields.fields import EncryptedFieldMixin


class UndecryptableValue(Exception):
    """A stored value does not open with any configured key."""


# --- Keys -------------------------------------------------------------------

_keyring_lock = threading.Lock()
_keyring_cache: dict[tuple, tuple[MultiFernet, Fernet]] = {}


def _derive(secret: str, salt: str) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt.encode(), iterations=100_000)
    return base64.urlsafe_b64encode(kdf.derive(secret.encode()))


def _key_material() -> tuple[tuple[str, ...], tuple[str, ...]]:
    secrets = (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ()))
    salt_setting = settings.SALT_KEY
    salts = salt_setting if isinstance(salt_setting, list | tuple) else [salt_setting]
    if not settings.SECRET_KEY or not salts or not all(salts):
        raise ImproperlyConfigured("SECRET_KEY and SALT_KEY must be set to encrypt personal data")
    return tuple(secrets), tuple(salts)


def _keys() -> tuple[MultiFernet, Fernet]:
    material = _key_material()
    cached = _keyring_cache.get(material)
    if cached is None:
        with _keyring_lock:
            cached = _keyring_cache.get(material)
            if cached is None:
                secrets, salts = material
                fernets = [Fernet(_derive(s, salt)) for s in secrets for salt in salts]
                cached = (MultiFernet(fernets), fernets[0])
                _keyring_cache[material] = cached
    return cached


def keyring() -> MultiFernet:
    """All configured keys; the first (current secret x first salt) encrypts."""
    return _keys()[0]


def current_key() -> Fernet:
    """The key new values are encrypted with."""
    return _keys()[1]


def encrypt_text(plaintext: str) -> str:
    return keyring().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt_text(token: str) -> str:
    try:
        return keyring().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError, ValueError) as exc:
        raise UndecryptableValue(
            "A stored value does not decrypt with the configured SECRET_KEY/SALT_KEY "
            "(or their fallbacks). Refusing to show ciphertext."
        ) from exc


def is_current(token: str) -> bool:
    """True when `token` is already encrypted with the current key."""
    try:
        current_key().decrypt(token.encode("ascii"))
    except (InvalidToken, ValueError):
        return False
    return True


def rotate_token(token: str) -> str:
    """Re-encrypt a stored token with the current key (raises if no key opens it)."""
    try:
        return keyring().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError) as exc:
        raise UndecryptableValue("A stored value does not decrypt with any configured key") from exc


# --- Fields -------------------------------------------------------------------


class StrictEncryptedMixin(EncryptedFieldMixin):
    """Encrypts on save, decrypts on load, raises when it cannot."""

    encrypted = True

    @property
    def keys(self) -> list[bytes]:  # type: ignore[override]
        raise AttributeError("use clinic.crypto.keyring()")

    @property
    def f(self) -> MultiFernet:  # type: ignore[override]
        return keyring()

    def get_prep_value(self, value: Any) -> Any:
        value = models.Field.get_prep_value(self, value)
        if value is None or value == "":
            return None if self.null else ""
        return encrypt_text(self.value_to_plaintext(value))

    def value_to_plaintext(self, value: Any) -> str:
        # Run the base type's conversion (e.g. "2020-01-31" -> date) so the stored text
        # is canonical, whatever the caller passed.
        python_value = super(EncryptedFieldMixin, self).to_python(value)  # type: ignore[misc]
        if isinstance(python_value, date):
            return python_value.isoformat()
        return str(python_value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return value
        return super(EncryptedFieldMixin, self).to_python(decrypt_text(value))  # type: ignore[misc]

    def to_python(self, value: Any) -> Any:
        # Values reaching to_python come from forms or code, never from the database.
        return super(EncryptedFieldMixin, self).to_python(value)  # type: ignore[misc]

    def clean(self, value: Any, model_instance: Any) -> Any:
        return models.Field.clean(self, value, model_instance)  # type: ignore[arg-type]

    def get_db_prep_save(self, value: Any, connection: Any) -> Any:
        return self.get_prep_value(value)

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        return value if prepared else self.get_prep_value(value)

    def db_type(self, connection: Any) -> str:
        return "text"

    def get_internal_type(self) -> str:
        return "TextField"

    def formfield(self, **kwargs: Any) -> Any:
        return super(EncryptedFieldMixin, self).formfield(**kwargs)  # type: ignore[misc]

    def get_lookup(self, lookup_name: str) -> Any:
        # Only exact lookups through a blind index and null checks make sense on
        # ciphertext; anything else would silently match nothing.
        if lookup_name in ("exact", "iexact") and getattr(self, "blind_index", None):
            return BlindIndexExact
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        raise TypeError(
            f"{self.model.__name__}.{self.name} is encrypted: only exact lookups through a "
            "blind index are possible"
        )


class EncryptedCharField(StrictEncryptedMixin, models.CharField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The length limit applies to the plaintext (checked in clean()); the column is text.
        self.validators  # noqa: B018 - build validators once

    def get_prep_value(self, value: Any) -> Any:
        return StrictEncryptedMixin.get_prep_value(self, value)


class EncryptedTextField(StrictEncryptedMixin, models.TextField):
    pass


class EncryptedEmailField(StrictEncryptedMixin, models.EmailField):
    pass


class EncryptedDateField(StrictEncryptedMixin, models.DateField):
    pass


# --- Blind index -----------------------------------------------------------------

NORMALISERS: dict[str, Callable[[str], str]] = {
    "digits": lambda v: "".join(ch for ch in v if ch.isdigit()),
    "email": lambda v: v.strip().lower(),
    "casefold": lambda v: " ".join(v.split()).casefold(),
}


def blind_index(value: str, *, purpose: str, normaliser: str) -> str:
    """HMAC-SHA256 of the normalised value, keyed per purpose so equal values in
    different columns do not share an index value."""
    normalised = NORMALISERS[normaliser](str(value))
    key = hashlib.sha256(f"{settings.BLIND_INDEX_KEY}|{purpose}".encode()).digest()
    return hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()


class BlindIndexField(models.CharField):
    """Holds the keyed index of another (encrypted) field of the same model; filled on save."""

    def __init__(self, *args: Any, source: str = "", normaliser: str = "casefold", **kwargs: Any):
        self.source = source
        self.normaliser = normaliser
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        kwargs["normaliser"] = self.normaliser
        for key in ("max_length", "editable", "null", "blank"):
            kwargs.pop(key, None)
        return name, path, args, kwargs

    def contribute_to_class(self, cls: type[models.Model], name: str, **kwargs: Any) -> None:
        super().contribute_to_class(cls, name, **kwargs)
        models.signals.class_prepared.connect(self._link_source, sender=cls, weak=False)

    def _link_source(self, sender: type[models.Model], **kwargs: Any) -> None:
        source_field = sender._meta.get_field(self.source)
        source_field.blind_index = self  # type: ignore[attr-defined]

    @property
    def purpose(self) -> str:
        return f"{self.model._meta.label_lower}.{self.source}"

    def index_of(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        return blind_index(value, purpose=self.purpose, normaliser=self.normaliser)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = self.index_of(getattr(model_instance, self.source))
        setattr(model_instance, self.attname, value)
        return value


class BlindIndexExact(Lookup):
    """`encrypted_field=value` compiled as `<its blind index column> = hmac(value)`."""

    lookup_name = "exact"
    prepare_rhs = False

    def get_prep_lookup(self) -> Any:
        return self.rhs

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        field = self.lhs.target
        index_field: BlindIndexField = field.blind_index
        index_col = Col(self.lhs.alias, index_field)
        lhs_sql, lhs_params = compiler.compile(index_col)
        if self.rhs is None or self.rhs == "":
            return f"{lhs_sql} IS NULL", list(lhs_params)
        return f"{lhs_sql} = %s", [*lhs_params, index_field.index_of(self.rhs)]
