"""payments.money: exact conversion between Decimal major units and the provider's
integer minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest

from payments.money import from_minor, to_minor


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        (Decimal("2500.00"), "RUB", 250000),
        (Decimal("2500"), "rub", 250000),
        (Decimal("0.01"), "USD", 1),
        (Decimal("1500.5"), "EUR", 150050),
        (Decimal("1E+3"), "RUB", 100000),
    ],
)
def test_to_minor(amount, currency, minor):
    assert to_minor(amount, currency) == minor
    assert from_minor(minor, currency) == amount


def test_from_minor_always_has_two_places():
    assert str(from_minor(250000, "RUB")) == "2500.00"
    assert str(from_minor(1, "EUR")) == "0.01"


@pytest.mark.parametrize("amount", [Decimal("10.005"), Decimal("0.001")])
def test_an_amount_finer_than_a_kopeck_is_refused_not_rounded(amount):
    with pytest.raises(ValueError, match="decimals"):
        to_minor(amount, "RUB")


def test_floats_and_non_finite_values_are_refused():
    with pytest.raises(TypeError):
        to_minor(10.1, "RUB")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        to_minor(Decimal("NaN"), "RUB")
    with pytest.raises(TypeError):
        from_minor(True, "RUB")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_minor(10.0, "RUB")  # type: ignore[arg-type]


def test_unknown_currencies_are_refused():
    for currency in ("JPY", "", "XXX"):
        with pytest.raises(ValueError, match="currency"):
            to_minor(Decimal("1"), currency)
        with pytest.raises(ValueError, match="currency"):
            from_minor(1, currency)
