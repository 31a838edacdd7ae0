"""Amounts at the provider's edge: the portal keeps `Decimal` roubles (major units), Stripe
speaks integers of the minor unit (kopecks, cents). Conversion is exact or it fails: an
amount finer than the currency's minor unit is a bug upstream, never rounded away here.
"""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 currencies the clinic takes, with their number of decimal places.
MINOR_UNITS: dict[str, int] = {"RUB": 2, "USD": 2, "EUR": 2}


def _exponent(currency: str) -> int:
    try:
        return MINOR_UNITS[currency.upper()]
    except (KeyError, AttributeError):
        raise ValueError(f"unsupported currency: {currency!r}") from None


def to_minor(amount: Decimal, currency: str) -> int:
    """Decimal("1500.50"), "RUB" -> 150050. Refuses floats, non-finite values and amounts
    with more decimals than the currency has."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError("amount must be finite")
    scaled = amount.scaleb(_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency.upper()} allows")
    return int(scaled)


def from_minor(amount_minor: int, currency: str) -> Decimal:
    """150050, "RUB" -> Decimal("1500.50") (always with the currency's decimal places)."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"amount_minor must be an int, not {type(amount_minor).__name__}")
    places = _exponent(currency)
    return Decimal(amount_minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))
