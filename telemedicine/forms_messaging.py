"""The shape of input to the messaging pages. Rules (who may write, what a file must
be, which record a thread may be about, limits) live in telemedicine.services_messaging."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from telemedicine.models import AboutKind, Team, ThreadState, Topic
from telemedicine.selectors_messaging import Linkables
from telemedicine.services_messaging import (
    ATTACHMENT_MAX_BYTES,
    BODY_MAX_LENGTH,
    SUBJECT_MAX_LENGTH,
)

ACCEPT = "application/pdf,image/jpeg,image/png,.pdf,.jpg,.jpeg,.png"
NO_RECORD = ""


def _body_field(label: Any) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=BODY_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 6, "maxlength": BODY_MAX_LENGTH}),
        error_messages={
            "required": _("Write your message."),
            "max_length": _("The message is too long (at most %(limit_value)d characters)."),
        },
    )


def _set_help_texts(form: forms.Form) -> None:
    """Help texts with numbers, worded in the language of the request (a `%` on a lazy
    string at import would fix them in the default language)."""
    form.fields["body"].help_text = gettext(
        "Up to %(max)d characters. Do not use messages for anything urgent: "
        "in an emergency call 103 or 112."
    ) % {"max": BODY_MAX_LENGTH}
    form.fields["file"].help_text = gettext("A PDF, JPEG or PNG file, up to %(mb)d MB.") % {
        "mb": ATTACHMENT_MAX_BYTES // (1024 * 1024)
    }


def _file_field() -> forms.FileField:
    return forms.FileField(
        label=_("Attach a file"),
        required=False,
        # The service reads the bytes and says what is wrong (empty, wrong type, too
        # large): the form only carries the file.
        allow_empty_file=True,
        widget=forms.FileInput(
            attrs={"accept": ACCEPT, "data-max-bytes": str(ATTACHMENT_MAX_BYTES)}
        ),
    )


class ThreadStartForm(forms.Form):
    topic = forms.ChoiceField(
        label=_("What is your message about?"),
        choices=Topic.choices,
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose what your message is about.")},
    )
    about = forms.ChoiceField(
        label=_("Which of your records is it about?"),
        required=False,
        help_text=_(
            "Choose one if the message is about a particular appointment, prescription, "
            "result or invoice."
        ),
    )
    subject = forms.CharField(
        label=_("Subject"),
        max_length=SUBJECT_MAX_LENGTH,
        error_messages={
            "required": _("Give your message a subject."),
            "max_length": _("The subject is too long (at most %(limit_value)d characters)."),
        },
    )
    body = _body_field(_("Your message"))
    file = _file_field()

    def __init__(self, *args: Any, linkables: Linkables, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _set_help_texts(self)
        groups: list[Any] = [(NO_RECORD, _("None in particular"))]
        for kind, label in (
            (AboutKind.APPOINTMENT, _("Appointments")),
            (AboutKind.PRESCRIPTION, _("Prescriptions")),
            (AboutKind.LAB_REPORT, _("Test results")),
            (AboutKind.INVOICE, _("Invoices")),
        ):
            items = linkables.of_kind(kind)
            if items:
                groups.append((label, [(f"{kind}:{i.public_id}", i.label) for i in items]))
        self.fields["about"].choices = groups
        # Anything else posted (another patient's record) is refused by the service, not
        # silently dropped by the form: accept the shape "kind:uuid".
        self.fields["about"].valid_value = lambda value: True  # type: ignore[method-assign]

    def clean_about(self) -> tuple[str, str]:
        value = self.cleaned_data.get("about") or ""
        if not value:
            return ("", "")
        kind, _sep, public_id = value.partition(":")
        if kind not in AboutKind.values or not public_id:
            raise forms.ValidationError(_("Choose one of your own records from the list."))
        return (kind, public_id)


class ReplyForm(forms.Form):
    body = _body_field(_("Your reply"))
    file = _file_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _set_help_texts(self)


class StateForm(forms.Form):
    state = forms.ChoiceField(
        label=_("State"),
        choices=ThreadState.choices,
        error_messages={"required": _("Choose a state.")},
    )


class RouteForm(forms.Form):
    team = forms.ChoiceField(
        label=_("Send to"),
        choices=Team.choices,
        error_messages={"required": _("Choose where to send the conversation.")},
    )


class TakeForm(forms.Form):
    action = forms.ChoiceField(choices=[("take", "take"), ("release", "release")])
