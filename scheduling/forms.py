"""The shape of input to the booking pages. Business rules (is the slot free, may this
appointment still be moved) live in scheduling.services."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Role, User
from scheduling.models import ConsultationType

# A slot's start as it travels in links and forms: UTC, to the second, with a "Z".
UTC_START = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")
NOTE_MAX = 1000


def format_utc_start(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc_start(value: str) -> datetime:
    """The aware UTC datetime of '2026-05-01T06:30:00Z'; ValidationError for anything else."""
    value = (value or "").strip()
    if not UTC_START.match(value):
        raise forms.ValidationError(
            _("The chosen time could not be read. Please choose a time again."), code="start"
        )
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise forms.ValidationError(
            _("The chosen time could not be read. Please choose a time again."), code="start"
        ) from exc


def _future(start: datetime) -> datetime:
    if start <= timezone.now():
        raise forms.ValidationError(
            _("This time has already passed. Please choose another time."), code="past"
        )
    return start


class SlotStartField(forms.CharField):
    """A strictly formatted UTC start, in the future."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("max_length", 20)
        unreadable = _("The chosen time could not be read. Please choose a time again.")
        kwargs.setdefault(
            "error_messages", {"required": _("Please choose a time."), "max_length": unreadable}
        )
        super().__init__(**kwargs)

    def clean(self, value: object) -> datetime | None:  # type: ignore[override]
        text = super().clean(value)  # required, length
        if text in self.empty_values:
            return None
        return _future(parse_utc_start(text))


class SlotForm(forms.Form):
    """A slot to book: doctor + consultation type + UTC start; an optional note."""

    doctor = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=1,
        max_value=2**31 - 1,
        error_messages={
            "required": _("Please choose a doctor."),
            "invalid": _("The chosen doctor could not be found. Please start again."),
            "min_value": _("The chosen doctor could not be found. Please start again."),
            "max_value": _("The chosen doctor could not be found. Please start again."),
        },
    )
    type = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=1,
        max_value=2**31 - 1,
        error_messages={
            "required": _("Please choose the type of visit."),
            "invalid": _("The chosen type of visit could not be found. Please start again."),
            "min_value": _("The chosen type of visit could not be found. Please start again."),
            "max_value": _("The chosen type of visit could not be found. Please start again."),
        },
    )
    start = SlotStartField()
    note = forms.CharField(
        label=_("Note for the doctor"),
        required=False,
        max_length=NOTE_MAX,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "For example, what you would like to discuss. Only the clinic can read it. "
            "Up to 1000 characters."
        ),
    )

    doctor_obj: User | None = None
    ctype_obj: ConsultationType | None = None

    def clean_doctor(self) -> int:
        doctor_id = self.cleaned_data["doctor"]
        self.doctor_obj = (
            User.objects.filter(pk=doctor_id, role=Role.DOCTOR, is_active=True)
            .select_related("staff_profile")
            .first()
        )
        if self.doctor_obj is None:
            raise forms.ValidationError(
                _("The chosen doctor could not be found. Please start again."), code="doctor"
            )
        return doctor_id

    def clean_type(self) -> int:
        type_id = self.cleaned_data["type"]
        self.ctype_obj = (
            ConsultationType.objects.filter(pk=type_id, active=True)
            .select_related("specialty")
            .first()
        )
        if self.ctype_obj is None:
            raise forms.ValidationError(
                _("The chosen type of visit could not be found. Please start again."),
                code="type",
            )
        return type_id

    def clean(self) -> dict:
        data = super().clean()
        if (
            self.doctor_obj is not None
            and self.ctype_obj is not None
            and not self.ctype_obj.doctors.filter(pk=self.doctor_obj.pk).exists()
        ):
            self.add_error(
                "type",
                forms.ValidationError(
                    _("This doctor does not offer this type of visit. Please start again."),
                    code="not_offered",
                ),
            )
        return data


class RescheduleForm(forms.Form):
    start = SlotStartField()


class CancelForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        max_length=200,
        strip=True,
        help_text=_("Optional. It helps the clinic plan. Up to 200 characters."),
    )
    # The fee the patient saw; if the policy gives another figure by the time they
    # confirm, they are asked again instead of being charged something they did not see.
    quoted_fee = forms.DecimalField(widget=forms.HiddenInput, max_digits=10, decimal_places=2)


class ReviewForm(forms.Form):
    rating = forms.TypedChoiceField(
        label=_("Your rating"),
        coerce=int,
        choices=[
            (5, _("5 — excellent")),
            (4, _("4 — good")),
            (3, _("3 — fair")),
            (2, _("2 — poor")),
            (1, _("1 — very poor")),
        ],
        widget=forms.RadioSelect,
        error_messages={"required": _("Please choose a rating from 1 to 5.")},
    )
    text = forms.CharField(
        label=_("Your review"),
        required=False,
        max_length=2000,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_(
            "Shown on the doctor's page without your name once the clinic approves it. "
            "Please do not write about your health. Up to 2000 characters."
        ),
    )


class SlotQueryForm(forms.Form):
    """Which consultation type and day the doctor's page shows (GET parameters)."""

    type = forms.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    day = forms.DateField(required=False, input_formats=["%Y-%m-%d"])

    def value(self, name: str) -> int | date | None:
        """The field's value, or None when it is missing or malformed (the page then
        shows its default)."""
        self.is_valid()
        return self.cleaned_data.get(name)
