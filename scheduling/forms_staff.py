"""Input of the staff schedule pages: shape only; the rules are in scheduling.schedule
and scheduling.services."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.models import Location
from scheduling.models import AppointmentStatus, ConsultationType, ExceptionKind, Weekday
from scheduling.selectors.staff import parse_slot_value


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%d")


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%H:%M")


def _locations() -> Any:
    return Location.objects.order_by("name")


class DayForm(forms.Form):
    """?date=YYYY-MM-DD on the day, week, booking and moving pages."""

    date = forms.DateField(label=_("Date"), required=False, widget=DateInput)


BREAK_RE = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–—]\s*(\d{1,2}:\d{2})\s*$")


def parse_breaks(value: str) -> list[tuple[time, time]]:
    breaks = []
    for part in re.split(r"[,;\n]+", value or ""):
        if not part.strip():
            continue
        match = BREAK_RE.match(part)
        if match is None:
            raise ValidationError(
                _("Write each break as “from–until”, for example 13:00–14:00."), code="format"
            )
        try:
            start, end = (time.fromisoformat(f"{int(v[:-3]):02d}{v[-3:]}") for v in match.groups())
        except ValueError as exc:
            raise ValidationError(_("%(value)s is not a time of day.") % {"value": part}) from exc
        breaks.append((start, end))
    return breaks


def format_breaks(breaks: Any) -> str:
    return ", ".join(f"{b.start:%H:%M}–{b.end:%H:%M}" for b in breaks)


class WorkingHoursForm(forms.Form):
    location = forms.ModelChoiceField(label=_("Location"), queryset=Location.objects.none())
    weekday = forms.TypedChoiceField(
        label=_("Day of the week"), choices=Weekday.choices, coerce=int
    )
    start = forms.TimeField(label=_("From"), widget=TimeInput)
    end = forms.TimeField(label=_("Until"), widget=TimeInput)
    slot_minutes = forms.IntegerField(
        label=_("Slot length (minutes)"), min_value=5, max_value=240, initial=30
    )
    breaks = forms.CharField(
        label=_("Breaks"),
        required=False,
        max_length=200,
        help_text=_("Separate several with commas, for example 11:00–11:15, 13:00–14:00."),
    )
    valid_from = forms.DateField(label=_("Valid from"), required=False, widget=DateInput)
    valid_until = forms.DateField(label=_("Valid until"), required=False, widget=DateInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["location"].queryset = _locations()

    def clean_breaks(self) -> list[tuple[time, time]]:
        return parse_breaks(self.cleaned_data.get("breaks", ""))


class ExceptionForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=ExceptionKind.choices)
    location = forms.ModelChoiceField(
        label=_("Location"),
        queryset=Location.objects.none(),
        required=False,
        help_text=_(
            "Needed for extra hours. Dates and times are in the location's time zone "
            "(without a location, in the doctor's)."
        ),
    )
    date_from = forms.DateField(label=_("First day"), widget=DateInput)
    time_from = forms.TimeField(
        label=_("From"),
        required=False,
        widget=TimeInput,
        help_text=_("Leave empty for the whole day."),
    )
    date_until = forms.DateField(label=_("Last day"), widget=DateInput)
    time_until = forms.TimeField(
        label=_("Until"),
        required=False,
        widget=TimeInput,
        help_text=_("Leave empty for the whole day."),
    )
    slot_minutes = forms.IntegerField(
        label=_("Slot length for extra hours (minutes)"),
        min_value=5,
        max_value=240,
        initial=30,
        required=False,
    )
    reason = forms.CharField(label=_("Note"), required=False, max_length=200)
    cancel_affected = forms.BooleanField(
        label=_("Cancel the affected appointments for the patients (free of charge)"),
        required=False,
    )

    def __init__(self, *args: Any, may_cancel: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["location"].queryset = _locations()
        if not may_cancel:
            del self.fields["cancel_affected"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        first, last = data.get("date_from"), data.get("date_until")
        if first and last and last < first:
            self.add_error("date_until", _("The last day cannot be before the first."))
        return data

    def period(self, tz_name: str) -> tuple[datetime, datetime]:
        """The exception's instants, reading the dates and times in `tz_name`."""
        tz = ZoneInfo(tz_name)
        data = self.cleaned_data
        start = datetime.combine(data["date_from"], data.get("time_from") or time.min, tzinfo=tz)
        if data.get("time_until"):
            end = datetime.combine(data["date_until"], data["time_until"], tzinfo=tz)
        else:
            end = datetime.combine(data["date_until"] + timedelta(days=1), time.min, tzinfo=tz)
        return start, end


class CapacityForm(forms.Form):
    location = forms.ModelChoiceField(
        label=_("Location"),
        queryset=Location.objects.none(),
        required=False,
        help_text=_("The time is read in this location's time zone (else the doctor's)."),
    )
    day = forms.DateField(label=_("Date"), widget=DateInput)
    time_from = forms.TimeField(label=_("From"), widget=TimeInput)
    time_until = forms.TimeField(label=_("Until"), widget=TimeInput)
    capacity = forms.IntegerField(label=_("Patients per slot"), min_value=1, max_value=20)
    reason = forms.CharField(
        label=_("Reason"),
        max_length=200,
        help_text=_("Required: why more than one patient per slot (for example, vaccinations)."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["location"].queryset = _locations()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if (
            data.get("time_from")
            and data.get("time_until")
            and data["time_until"] <= data["time_from"]
        ):
            self.add_error("time_until", _("The end must be later than the start."))
        return data

    def period(self, tz_name: str) -> tuple[datetime, datetime]:
        tz = ZoneInfo(tz_name)
        data = self.cleaned_data
        return (
            datetime.combine(data["day"], data["time_from"], tzinfo=tz),
            datetime.combine(data["day"], data["time_until"], tzinfo=tz),
        )


class PatientFindForm(forms.Form):
    query = forms.CharField(
        label=_("Patient's SNILS, passport or email"),
        max_length=254,
        help_text=_("Exactly as in the document. Sent in the form, never in the address."),
    )


class SlotField(forms.ChoiceField):
    """A free time as radio buttons. Any well-formed time is accepted: whether it is
    still free is for the booking service to say (and suggest others if not)."""

    widget = forms.RadioSelect

    def valid_value(self, value: Any) -> bool:
        return parse_slot_value(str(value)) is not None

    def clean(self, value: Any) -> datetime | None:
        value = super().clean(value)
        if not value:
            return None
        return parse_slot_value(value)


class BookingForm(forms.Form):
    consultation_type = forms.ModelChoiceField(
        label=_("Consultation type"), queryset=ConsultationType.objects.none()
    )
    date = forms.DateField(label=_("Date"), widget=DateInput)
    start = SlotField(label=_("Time"), required=False)

    def __init__(
        self,
        *args: Any,
        consultation_types: Any,
        times: list | None = None,
        require_start: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["consultation_type"].queryset = consultation_types
        self.fields["start"].choices = [(t.value, t.label) for t in times or []]
        self.fields["start"].required = require_start

    def clean_start(self) -> datetime | None:
        return self.cleaned_data.get("start")


class RescheduleForm(forms.Form):
    date = forms.DateField(label=_("Date"), widget=DateInput)
    start = SlotField(label=_("New time"), required=False)

    def __init__(
        self, *args: Any, times: list | None = None, require_start: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["start"].choices = [(t.value, t.label) for t in times or []]
        self.fields["start"].required = require_start


class CancelForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for cancelling"),
        max_length=200,
        help_text=_("For example: the patient called to cancel."),
    )


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=AppointmentStatus.choices)


class ReviewDecisionForm(forms.Form):
    review = forms.IntegerField(min_value=1)
    decision = forms.ChoiceField(choices=[("approve", _("Approve")), ("reject", _("Reject"))])


def parse_day(value: str | None) -> date | None:
    form = DayForm({"date": value or ""})
    return form.cleaned_data.get("date") if form.is_valid() else None
