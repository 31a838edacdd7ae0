"""Shapes of input. Business rules live in accounts.services."""

from __future__ import annotations

from django import forms
from django.contrib.auth import password_validation
from django.utils.translation import gettext_lazy as _

from accounts.models import Department, Language, PatientProfile, VerificationMethod
from accounts.validators import validate_passport, validate_phone, validate_snils


class DateInput(forms.DateInput):
    input_type = "date"


class SignupForm(forms.Form):
    email = forms.EmailField(
        label=_("Email"), widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    last_name = forms.CharField(
        label=_("Last name"),
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    first_name = forms.CharField(
        label=_("First name"),
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    middle_name = forms.CharField(
        label=_("Middle name (if any)"),
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "additional-name"}),
    )
    birth_date = forms.DateField(
        label=_("Date of birth"), widget=DateInput(attrs={"autocomplete": "bday"})
    )
    phone = forms.CharField(
        label=_("Mobile phone"),
        max_length=32,
        validators=[validate_phone],
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
    )
    language = forms.ChoiceField(label=_("Language of messages"), choices=Language.choices)
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_(
            "At least 12 characters. A short sentence is easy to remember and hard to guess."
        ),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    accept_health_data_consent = forms.BooleanField(
        label=_("I consent to the processing of my personal and health data"),
        required=True,
        error_messages={"required": _("Consent to the processing of health data is required.")},
    )

    def clean(self) -> dict:
        data = super().clean()
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("The two passwords differ."))
        elif p1:
            try:
                password_validation.validate_password(p1)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class PersonalDataForm(forms.ModelForm):
    class Meta:
        model = PatientProfile
        fields = [
            "last_name",
            "first_name",
            "middle_name",
            "birth_date",
            "sex",
            "phone",
            "address",
            "insurance_policy",
        ]
        widgets = {"birth_date": DateInput(), "address": forms.Textarea(attrs={"rows": 3})}


class IdentityDocumentsForm(forms.Form):
    snils = forms.CharField(
        label=_("SNILS"),
        max_length=14,
        validators=[validate_snils],
        help_text=_("11 digits, e.g. 112-233-445 95"),
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    passport = forms.CharField(
        label=_("Passport series and number"),
        max_length=20,
        validators=[validate_passport],
        help_text=_("4 + 6 digits, e.g. 4510 123456"),
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    scan = forms.FileField(
        label=_("Scan of the passport (optional)"),
        required=False,
        help_text=_("PDF, JPEG or PNG, up to 10 MB."),
    )


class ConsentDecisionForm(forms.Form):
    kind = forms.CharField(widget=forms.HiddenInput)
    decision = forms.ChoiceField(
        choices=[("give", "give"), ("withdraw", "withdraw")], widget=forms.HiddenInput
    )


class VerifyIdentityForm(forms.Form):
    method = forms.ChoiceField(
        label=_("How were the documents checked?"),
        choices=VerificationMethod.choices,
        widget=forms.RadioSelect,
    )
    note = forms.CharField(
        label=_("Note (optional)"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class PatientSearchForm(forms.Form):
    query = forms.CharField(label=_("SNILS, passport or email"), max_length=254)


class BreakGlassForm(forms.Form):
    reason = forms.CharField(
        label=_("Why do you need this record now?"),
        help_text=_(
            "For example: the patient is unconscious in the emergency room. The patient and "
            "the administrators will see this reason."
        ),
        min_length=15,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class DepartmentAssignForm(forms.Form):
    department = forms.ModelChoiceField(
        label=_("Care department"),
        queryset=Department.objects.select_related("location"),
        required=False,
        help_text=_("Doctors and nurses of this department can open the patient's record."),
    )
