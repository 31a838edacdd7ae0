from decimal import Decimal

from django import template
from django.utils import formats

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str = "RUB") -> str:
    """`{{ amount|money:currency }}`: localized, two decimals, the currency code after."""
    if amount is None:
        return ""
    return f"{formats.number_format(amount, 2, use_l10n=True)} {currency}"
