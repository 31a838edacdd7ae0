"""The shape of input to the consultation screen's forms. Rules (who may write, what a
prescription or referral needs) live in records' services; limits come from them.

Each form has its own prefix, so the four forms share one page (and the video page)
without clashing ids."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from records.services import NOTE_MAX_LENGTH
from records.services_care import INSTRUCTIONS_MAX_LENGTH, MAX_REPEATS, MEDICATION_MAX_LENGTH
from records.services_documents import BODY_MAX_LENGTH, TITLE_MAX_LENGTH


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class ConsultNoteForm(forms.Form):
    prefix = "note"

    text = forms.CharField(
        label=_("Note"),
        max_length=NOTE_MAX_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"required": _("Write the note.")},
    )
    visibility = forms.ChoiceField(
        label=_("Who can read it"),
        choices=[
            ("internal", _("Internal: clinic staff only, never the patient")),
            ("patient", _("The patient too, once the summary is released")),
        ],
        initial="internal",
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose who can read the note.")},
    )

    @property
    def internal(self) -> bool:
        return self.cleaned_data["visibility"] != "patient"


class ConsultPrescriptionForm(forms.Form):
    prefix = "rx"

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
        widget=forms.Textarea(attrs={"rows": 2}),
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


class ConsultReferralForm(forms.Form):
    prefix = "referral"

    title = forms.CharField(
        label=_("Referral to"),
        max_length=TITLE_MAX_LENGTH,
        help_text=_("For example: “Cardiologist” or “Abdominal ultrasound”."),
        error_messages={"required": _("Say what the referral is to.")},
    )
    body = forms.CharField(
        label=_("Text of the referral"),
        max_length=BODY_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("The reason and what is asked for. It is printed on the referral."),
        error_messages={"required": _("Write the text of the referral.")},
    )
    release = forms.BooleanField(
        label=_("Show it to the patient (in their documents, once the PDF is ready)"),
        required=False,
        initial=True,
    )


class ConsultSummaryForm(forms.Form):
    prefix = "summary"

    summary = forms.CharField(
        label=_("Summary for the patient"),
        max_length=NOTE_MAX_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_(
            "Findings, advice and next steps in plain words. Releasing it signs the visit: "
            "the patient reads it with your notes for them and is told it is ready."
        ),
        error_messages={"required": _("Write the summary for the patient.")},
    )
    end_call = forms.BooleanField(
        label=_("End the video call for both"), required=False, initial=True
    )
