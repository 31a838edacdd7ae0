"""Payments' input shapes. Rules (who may, how much) live in services."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from payments.models import InsuranceKind, RefundReason


class InsuranceForm(forms.Form):
    kind = forms.ChoiceField(label=_("Insurance"), choices=InsuranceKind.choices)
    insurer = forms.CharField(label=_("Insurance company"), max_length=200)
    policy_number = forms.CharField(
        label=_("Policy number"),
        max_length=40,
        help_text=_("As printed on the policy. Reception checks it when you arrive."),
    )


class CardTokenForm(forms.Form):
    # Stripe token ids ("tok_…"); anything else is refused before reaching the provider.
    token = forms.RegexField(regex=r"^tok_[A-Za-z0-9_]{4,250}$", max_length=255)


class InvoiceForm(forms.Form):
    description = forms.CharField(
        label=_("Service"),
        max_length=200,
        help_text=_("Shown on the invoice and the receipt; keep medical details out of it."),
    )
    amount = forms.DecimalField(
        label=_("Amount"), min_value=Decimal("0.01"), max_digits=10, decimal_places=2
    )


class RefundForm(forms.Form):
    amount = forms.DecimalField(
        label=_("Amount to refund"), min_value=Decimal("0.01"), max_digits=10, decimal_places=2
    )
    reason = forms.ChoiceField(
        label=_("Reason"),
        choices=[(RefundReason.ADMIN, RefundReason.ADMIN.label)],
        initial=RefundReason.ADMIN,
    )
    note = forms.CharField(
        label=_("Why (kept in the record)"), min_length=10, max_length=300, widget=forms.Textarea
    )


class PeriodForm(forms.Form):
    date_from = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(
        label=_("Group by"),
        choices=[
            ("doctor", _("Doctor")),
            ("consultation_type", _("Consultation type")),
            ("month", _("Month")),
        ],
        initial="doctor",
        required=False,
    )

    def clean(self):  # noqa: ANN201
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end:
            if end < start:
                raise forms.ValidationError(_("The period ends before it starts."))
            if (end - start).days > 366 * 3:
                raise forms.ValidationError(_("Choose a period of at most three years."))
        return data
