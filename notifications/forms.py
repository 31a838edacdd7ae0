"""The shape of notification input."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class PreferenceForm(forms.Form):
    email_enabled = forms.BooleanField(label=_("Email"), required=False)
    sms_enabled = forms.BooleanField(
        label=_("SMS to my mobile phone"),
        required=False,
        help_text=_("Uses the phone number in “My details”."),
    )
    language = forms.ChoiceField(
        label=_("Language of messages"),
        choices=[("", _("The language of the portal")), ("ru", "Русский"), ("en", "English")],
        required=False,
    )

    def __init__(self, *args: object, has_phone: bool = True, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.has_phone = has_phone

    def clean(self) -> dict:
        data = super().clean()
        if data.get("sms_enabled") and not self.has_phone:
            self.add_error(
                "sms_enabled", _("Add a mobile phone number in “My details” to get SMS.")
            )
        if not data.get("email_enabled") and not data.get("sms_enabled"):
            raise forms.ValidationError(
                _("Keep at least one channel on: it is how the clinic tells you of changes.")
            )
        return data


class FollowUpForm(forms.Form):
    weeks = forms.TypedChoiceField(
        label=_("Send the invitation"),
        coerce=int,
        choices=[
            (0, _("now")),
            (1, _("in 1 week")),
            (2, _("in 2 weeks")),
            (4, _("in 4 weeks")),
            (12, _("in 3 months")),
            (26, _("in 6 months")),
        ],
    )
