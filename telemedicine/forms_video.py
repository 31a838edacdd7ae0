"""The shape of input on the video pages (rules live in telemedicine.services_video)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class RecordingConsentForm(forms.Form):
    """One party gives or withdraws their own consent to recording."""

    decision = forms.ChoiceField(
        label=_("Recording"),
        choices=[("give", _("I agree to recording")), ("withdraw", _("I withdraw my consent"))],
    )

    @property
    def give(self) -> bool:
        return self.cleaned_data["decision"] == "give"
