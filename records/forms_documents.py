"""The shape of input to the documents pages. Rules (what a file must be, who may
review) live in records.services_documents and clinic.files."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from records.services_documents import REASON_MAX_LENGTH, TITLE_MAX_LENGTH, UPLOAD_MAX_BYTES

ACCEPT = "application/pdf,image/jpeg,image/png,.pdf,.jpg,.jpeg,.png"


def _file_field() -> forms.FileField:
    return forms.FileField(
        label=_("File"),
        # The service reads the bytes and says what is wrong (empty, wrong type, too
        # large): the form only asks that a file was chosen.
        allow_empty_file=True,
        help_text=_("A PDF, JPEG or PNG file, up to %(mb)d MB.")
        % {"mb": UPLOAD_MAX_BYTES // (1024 * 1024)},
        error_messages={"required": _("Choose a file to upload.")},
        widget=forms.FileInput(attrs={"accept": ACCEPT, "data-max-bytes": str(UPLOAD_MAX_BYTES)}),
    )


class PatientUploadForm(forms.Form):
    title = forms.CharField(
        label=_("What is it?"),
        max_length=TITLE_MAX_LENGTH,
        required=False,
        help_text=_("For example: blood test from another clinic, 12 March."),
    )
    file = _file_field()


class StaffUploadForm(forms.Form):
    title = forms.CharField(
        label=_("Title"),
        max_length=TITLE_MAX_LENGTH,
        required=False,
        help_text=_("If left empty, the file's name is used."),
    )
    file = _file_field()
    release = forms.BooleanField(
        label=_("Show it to the patient now"), required=False, initial=False
    )


class UploadReviewForm(forms.Form):
    decision = forms.ChoiceField(
        label=_("Decision"),
        choices=[
            ("accept", _("Accept into the record")),
            ("reject", _("Reject (the patient sees the reason)")),
        ],
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose accept or reject.")},
    )
    reason = forms.CharField(
        label=_("Reason for rejecting"),
        max_length=REASON_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Needed when rejecting. The patient reads it."),
    )

    @property
    def accept(self) -> bool:
        return self.cleaned_data.get("decision") == "accept"


class VerifyForm(forms.Form):
    code = forms.CharField(
        label=_("Verification code"),
        max_length=32,
        help_text=_("The code printed at the bottom of the document, such as 7KQ2-M9XD-4PRT."),
        error_messages={"required": _("Enter the code printed on the document.")},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
