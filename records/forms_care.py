"""The shape of input to the prescription, renewal, intake, vaccination and care-plan
pages. Rules (who may act, which state may follow which) live in
records.services_care."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from records.services_care import (
    INSTRUCTIONS_MAX_LENGTH,
    INTAKE_ANSWER_MAX_LENGTH,
    MAX_DOSE_NUMBER,
    MAX_REPEATS,
    MEDICATION_MAX_LENGTH,
    NOTES_MAX_LENGTH,
    PHARMACY_MAX_LENGTH,
    REASON_MAX_LENGTH,
)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class RenewalRequestForm(forms.Form):
    """The patient picks one of their repeat medications and confirms the details."""

    prescription = forms.ChoiceField(
        label=_("Medication to renew"),
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Choose the medication to renew."),
            "invalid_choice": _("This medication cannot be renewed now. Choose another one."),
        },
    )
    confirmed_dosage = forms.CharField(
        label=_("The dosage you take"),
        max_length=MEDICATION_MAX_LENGTH,
        help_text=_("As written on your prescription, for example “10 mg once a day”."),
        error_messages={"required": _("Confirm the dosage you take.")},
    )
    pharmacy = forms.CharField(
        label=_("Pharmacy"),
        max_length=PHARMACY_MAX_LENGTH,
        help_text=_("The pharmacy's name and address, where you want to collect it."),
        error_messages={"required": _("Enter the pharmacy the prescription should go to.")},
    )
    notes = forms.CharField(
        label=_("Notes for the doctor"),
        max_length=NOTES_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("Anything that changed since your last visit: side effects, other medicines."),
    )

    def __init__(self, *args, prescriptions=(), **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.prescriptions = {str(p.public_id): p for p in prescriptions}
        self.fields["prescription"].choices = [
            (key, p.choice_label) for key, p in self.prescriptions.items()
        ]

    @property
    def chosen(self):  # noqa: ANN201
        return self.prescriptions.get(self.cleaned_data.get("prescription", ""))


def _answer(label, help_text=""):  # noqa: ANN001, ANN202
    return forms.CharField(
        label=label,
        required=False,
        max_length=INTAKE_ANSWER_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=help_text,
    )


class IntakeFormForm(forms.Form):
    """The patient's answers before a visit. Two buttons: "Save draft" and "Send to
    the doctor" (`action=submit`); the reason is required to send."""

    reason = _answer(
        _("Why are you coming?"),
        _("Required to send the form. For example: “headaches for two weeks”."),
    )
    symptoms = _answer(
        _("Symptoms"), _("What you feel, since when, what makes it better or worse.")
    )
    allergies = _answer(
        _("Allergies"), _("To medicines, foods or anything else. Write “none” if none.")
    )
    medications = _answer(
        _("Medicines you take"), _("Name, dose and how often, including vitamins and supplements.")
    )
    history = _answer(
        _("Illnesses and operations"), _("Long-term conditions, past operations, hospital stays.")
    )
    family_history = _answer(
        _("Family history"),
        _("Illnesses of your parents, brothers and sisters, for example diabetes."),
    )
    action = forms.ChoiceField(
        choices=[("draft", "draft"), ("submit", "submit")],
        required=False,
        widget=forms.HiddenInput,
    )

    @property
    def submit(self) -> bool:
        return self.cleaned_data.get("action") == "submit"

    def answers(self) -> dict[str, str]:
        return {name: self.cleaned_data.get(name, "") for name in self.fields if name != "action"}


class RenewalRejectForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for the patient"),
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("The patient reads this. Say what to do next, for example book a visit."),
        error_messages={"required": _("Tell the patient why the request is rejected.")},
    )


class PrescriptionForm(forms.Form):
    medication = forms.CharField(
        label=_("Medication"),
        max_length=MEDICATION_MAX_LENGTH,
        error_messages={"required": _("Enter the medication.")},
    )
    dosage = forms.CharField(
        label=_("Dosage"),
        max_length=MEDICATION_MAX_LENGTH,
        help_text=_("Strength and how often, for example “10 mg once a day”."),
        error_messages={"required": _("Enter the dosage.")},
    )
    instructions = forms.CharField(
        label=_("Instructions for the patient"),
        max_length=INSTRUCTIONS_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    is_repeat = forms.BooleanField(
        label=_("Repeat prescription (the patient may ask to renew it)"), required=False
    )
    repeats_allowed = forms.IntegerField(
        label=_("Renewals allowed"),
        min_value=0,
        max_value=MAX_REPEATS,
        initial=0,
        required=False,
        help_text=_("For a repeat prescription: from 1 to 12."),
    )
    valid_until = forms.DateField(label=_("Valid until"), required=False, widget=DateInput())


class VaccinationForm(forms.Form):
    vaccine = forms.CharField(
        label=_("Vaccine"), max_length=200, error_messages={"required": _("Enter the vaccine.")}
    )
    given_on = forms.DateField(
        label=_("Date given"),
        widget=DateInput(),
        error_messages={"required": _("Enter the date the vaccine was given.")},
    )
    dose_number = forms.IntegerField(
        label=_("Dose number"), min_value=1, max_value=MAX_DOSE_NUMBER, initial=1
    )
    lot = forms.CharField(label=_("Lot number"), max_length=60, required=False)
    notes = forms.CharField(
        label=_("Notes"),
        max_length=NOTES_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class CarePlanForm(forms.Form):
    condition = forms.CharField(
        label=_("Condition"),
        max_length=300,
        error_messages={"required": _("Enter the condition.")},
    )
    instructions = forms.CharField(
        label=_("Instructions for the patient"),
        max_length=INSTRUCTIONS_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_("What to do day to day, what to measure, when to call the clinic."),
        error_messages={"required": _("Write the instructions for the patient.")},
    )
    start_date = forms.DateField(label=_("Start"), widget=DateInput(), required=False)
    review_date = forms.DateField(label=_("Next review"), widget=DateInput(), required=False)
    active = forms.BooleanField(label=_("Active"), required=False, initial=True)


class CarePlanCreateForm(CarePlanForm):
    """A new plan is active; ending it is a change to an existing plan."""

    active = None
