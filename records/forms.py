"""The shape of input to the records pages. Rules (who may review, what a release
needs) live in records.services."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from records.models import ICD10_PATTERN, DiagnosisKind
from records.services import COMMENT_MAX_LENGTH, NOTE_MAX_LENGTH


class LabReviewForm(forms.Form):
    """A doctor's comment on a result. Two buttons submit it: "Save comment" and
    "Save and release to the patient" (`action=release`)."""

    comment = forms.CharField(
        label=_("Comment for the patient"),
        max_length=COMMENT_MAX_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_("The patient reads this with the results: what they mean and what to do next."),
        error_messages={"required": _("Write a comment for the patient.")},
    )
    action = forms.ChoiceField(
        choices=[("save", "save"), ("release", "release")],
        required=False,
        widget=forms.HiddenInput,
    )

    @property
    def release(self) -> bool:
        return self.cleaned_data.get("action") == "release"


class VisitNoteForm(forms.Form):
    text = forms.CharField(
        label=_("Note"),
        max_length=NOTE_MAX_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 5}),
        error_messages={"required": _("Write the note.")},
    )
    visibility = forms.ChoiceField(
        label=_("Who can read it"),
        choices=[
            ("internal", _("Internal: clinic staff only, never the patient")),
            ("patient", _("The patient too, once the visit is released")),
        ],
        initial="internal",
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose who can read the note.")},
    )

    @property
    def internal(self) -> bool:
        return self.cleaned_data["visibility"] != "patient"


# --- A doctor's visit: summary and ICD-10 diagnoses ------------------------------------


class DiagnosisForm(forms.Form):
    """One ICD-10 diagnosis. A row left empty is ignored; a row with only a code or
    only a text is an error."""

    code = forms.CharField(
        label=_("ICD-10 code"),
        max_length=10,
        required=False,
        strip=True,
        widget=forms.TextInput(
            attrs={"autocapitalize": "characters", "spellcheck": "false", "autocomplete": "off"}
        ),
    )
    text = forms.CharField(label=_("Diagnosis"), max_length=300, required=False, strip=True)
    kind = forms.ChoiceField(
        label=_("Kind"), choices=DiagnosisKind.choices, initial=DiagnosisKind.PRIMARY
    )

    def clean_code(self) -> str:
        code = self.cleaned_data["code"].upper().replace(",", ".").replace(" ", "")
        if code and not ICD10_PATTERN.match(code):
            raise forms.ValidationError(
                _("Enter an ICD-10 code: a letter, two digits and optionally a point with up "
                  "to four more, such as E11.9."),
                code="icd10",
            )  # fmt: skip
        return code

    def clean(self) -> dict:
        data = super().clean()
        code, text = data.get("code"), data.get("text")
        if code and not text and "text" not in self.errors:
            self.add_error("text", _("Write the diagnosis in words for this code."))
        if text and not code and "code" not in self.errors:
            self.add_error("code", _("Enter the ICD-10 code of this diagnosis."))
        return data

    @property
    def filled(self) -> bool:
        data = getattr(self, "cleaned_data", {})
        return bool(data.get("code") or data.get("text")) and not data.get("DELETE")


class BaseDiagnosisFormSet(forms.BaseFormSet):
    def add_fields(self, form, index) -> None:  # noqa: ANN001
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = _("Remove this diagnosis")

    def diagnoses(self) -> list[dict[str, str]]:
        """The filled rows in order, for records.services (call after is_valid())."""
        return [
            {"code": f.cleaned_data["code"], "text": f.cleaned_data["text"],
             "kind": f.cleaned_data["kind"]}
            for f in self.forms
            if f.filled
        ]  # fmt: skip


MAX_DIAGNOSES = 20

DiagnosisFormSet = forms.formset_factory(
    DiagnosisForm,
    formset=BaseDiagnosisFormSet,
    extra=2,
    can_delete=True,
    max_num=MAX_DIAGNOSES,
    validate_max=True,
    absolute_max=MAX_DIAGNOSES + 5,
)


class VisitForm(forms.Form):
    """What the patient reads about the visit (the diagnoses come in a formset)."""

    summary = forms.CharField(
        label=_("Summary for the patient"),
        max_length=NOTE_MAX_LENGTH,
        required=False,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_(
            "Findings, advice and next steps in plain words. The patient reads it once you "
            "sign and release the visit."
        ),
    )


class VisitCreateForm(VisitForm):
    """A new visit, optionally for one of the patient's appointments with this doctor
    (`appointments`: what records.selectors.visit_new_for found)."""

    appointment = forms.ChoiceField(label=_("Appointment"), required=False)
    started_at = forms.DateTimeField(
        label=_("Started"),
        required=False,
        help_text=_("Leave empty for the appointment's time, or now without one."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )

    field_order = ["appointment", "started_at", "summary"]

    def __init__(self, *args, appointments=(), appointment_label=str, **kwargs) -> None:  # noqa: ANN001
        super().__init__(*args, **kwargs)
        self._appointments = {str(a.public_id): a for a in appointments}
        self.fields["appointment"].choices = [
            ("", _("No appointment")),
            *((str(a.public_id), appointment_label(a)) for a in appointments),
        ]

    def clean_appointment(self):  # noqa: ANN201
        value = self.cleaned_data.get("appointment") or ""
        return self._appointments.get(value)
