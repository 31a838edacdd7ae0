"""The shape of input to the records pages. Rules (who may review, what a release
needs) live in records.services."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

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
