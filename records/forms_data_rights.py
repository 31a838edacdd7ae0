"""The shape of input to the "My data" pages. The rules (who may, the password check,
what a deletion does) live in records.services_data_rights."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class DeletionForm(forms.Form):
    """Deleting the account asks for the password again and an explicit confirmation."""

    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        error_messages={"required": _("Enter your password.")},
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text=_("To be sure it is you, enter the password you sign in with."),
    )
    confirm = forms.BooleanField(
        label=_("Yes, delete my account"),
        help_text=_(
            "I understand that my account will be closed and I will not be able to sign in "
            "again, and that my medical record is kept by the clinic as the law requires."
        ),
        error_messages={
            "required": _("Tick the box to confirm that you want to delete your account.")
        },
    )
