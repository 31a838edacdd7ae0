"""Django admin for scheduling. Every model is registered. Appointments and their
history, the queue and the waitlist are read-only here: the only changes are actions
that call the services (cancel, mark as no-show). Templates, exceptions and capacity
overrides are added through forms whose saving calls the services, so each change is
checked and audited, and a capacity override always has its reason. Views of rows that
belong to a patient are audited (clinic.admin_audit)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.models import Role, User
from clinic.admin_audit import AuditedAdminMixin
from scheduling import schedule, services
from scheduling.forms_staff import format_breaks, parse_breaks
from scheduling.models import (
    Appointment,
    AppointmentEvent,
    AppointmentStatus,
    CapacityOverride,
    ConsultationType,
    DoctorReview,
    QueueTicket,
    ScheduleException,
    WaitlistEntry,
    WaitlistOffer,
    WorkingHours,
    WorkingHoursBreak,
)


class ReadOnlyMixin:
    """Viewable, never added, edited or deleted in the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _doctors() -> QuerySet[User]:
    return User.objects.filter(role=Role.DOCTOR).select_related("staff_profile")


class DoctorChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return obj.display_name()


class ServiceSavedAdmin(admin.ModelAdmin):
    """Rows created by a service in `save_model`. If the service refuses at the last
    moment (a booking arrived meanwhile), the admin says so instead of failing."""

    @staticmethod
    def _adopt(obj: Any, saved: Any) -> None:
        """Make the admin's object the row the service saved (for its messages and log)."""
        for field in saved._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False

    def _service_failed(self, request: HttpRequest, exc: Exception) -> None:
        messages.error(request, " ".join(getattr(exc, "messages", [])) or str(_("Not saved.")))
        request._scheduling_admin_failed = True  # noqa: SLF001

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if obj.pk is None:
            return None
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if getattr(request, "_scheduling_admin_failed", False):
            return None
        return super().log_change(request, obj, message)

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        if obj.pk is None or getattr(request, "_scheduling_admin_failed", False):
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        if getattr(request, "_scheduling_admin_failed", False):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


# --- Reference data --------------------------------------------------------------------


@admin.register(ConsultationType)
class ConsultationTypeAdmin(admin.ModelAdmin):
    list_display = ("code", "name_en", "specialty", "mode", "duration_minutes", "price", "active")
    list_filter = ("specialty", "mode", "active", "prepayment_required")
    search_fields = ("code", "name_en", "name_ru")
    filter_horizontal = ("doctors",)


# --- Weekly templates ------------------------------------------------------------------------


class WorkingHoursForm(forms.ModelForm):
    doctor = DoctorChoiceField(label=_("doctor"), queryset=User.objects.none())
    breaks = forms.CharField(
        label=_("Breaks"),
        required=False,
        max_length=200,
        help_text=_("For example 11:00–11:15, 13:00–14:00 (the location's local time)."),
    )

    class Meta:
        model = WorkingHours
        fields = (
            "doctor",
            "location",
            "weekday",
            "start",
            "end",
            "slot_minutes",
            "valid_from",
            "valid_until",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "doctor" in self.fields:
            self.fields["doctor"].queryset = _doctors()
        if self.instance.pk:
            self.initial["breaks"] = format_breaks(self.instance.breaks.all())

    def clean_breaks(self) -> list:
        return parse_breaks(self.cleaned_data.get("breaks", ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        doctor = data.get("doctor") or getattr(self.instance, "doctor", None)
        if doctor is not None and not self.errors:
            try:
                schedule.working_hours_validate(
                    doctor=doctor,
                    location=data.get("location"),
                    weekday=data.get("weekday"),
                    start=data.get("start"),
                    end=data.get("end"),
                    slot_minutes=data.get("slot_minutes"),
                    breaks=data.get("breaks") or (),
                    valid_from=data.get("valid_from"),
                    valid_until=data.get("valid_until"),
                    exclude_pk=self.instance.pk,
                )
            except ValidationError as exc:
                for name, errors in exc.error_dict.items():
                    self.add_error(name if name in self.fields else None, errors)
        return data

    def _post_clean(self) -> None:
        # The model's own checks run in the service; the breaks field is not a model field.
        pass


@admin.register(WorkingHours)
class WorkingHoursAdmin(ServiceSavedAdmin):
    form = WorkingHoursForm
    list_display = ("doctor_name", "weekday", "start", "end", "slot_minutes", "location")
    list_filter = ("weekday", "location")
    list_select_related = ("doctor__staff_profile", "location")

    @admin.display(description=_("doctor"))
    def doctor_name(self, obj: WorkingHours) -> str:
        return obj.doctor.display_name()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("doctor",) if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: WorkingHours, form: Any, change: bool) -> None:
        data = form.cleaned_data
        current = WorkingHours.objects.get(pk=obj.pk) if change else None
        try:
            saved = schedule.working_hours_set(
                by=request.user,
                doctor=current.doctor if current else data["doctor"],
                location=data["location"],
                weekday=data["weekday"],
                start=data["start"],
                end=data["end"],
                slot_minutes=data["slot_minutes"],
                breaks=data.get("breaks") or (),
                valid_from=data.get("valid_from"),
                valid_until=data.get("valid_until"),
                working_hours=current,
            )
        except (ValidationError, PermissionDenied) as exc:
            self._service_failed(request, exc)
            return
        self._adopt(obj, saved)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # breaks are saved by the service

    def delete_model(self, request: HttpRequest, obj: WorkingHours) -> None:
        schedule.working_hours_delete(by=request.user, working_hours=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            schedule.working_hours_delete(by=request.user, working_hours=obj)


@admin.register(WorkingHoursBreak)
class WorkingHoursBreakAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Breaks are edited with their working hours."""

    list_display = ("working_hours", "start", "end")
    list_select_related = ("working_hours",)


# --- Exceptions -------------------------------------------------------------------------------


class ScheduleExceptionForm(forms.ModelForm):
    doctor = DoctorChoiceField(label=_("doctor"), queryset=User.objects.none())
    starts_at = forms.SplitDateTimeField(label=_("from"), widget=admin.widgets.AdminSplitDateTime)
    ends_at = forms.SplitDateTimeField(label=_("until"), widget=admin.widgets.AdminSplitDateTime)
    cancel_affected = forms.BooleanField(
        label=_("Cancel the booked appointments in this time for the patients"),
        required=False,
    )

    class Meta:
        model = ScheduleException
        fields = ("doctor", "kind", "location", "slot_minutes", "reason")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["doctor"].queryset = _doctors()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        try:
            schedule.schedule_exception_validate(
                kind=data.get("kind"),
                starts_at=data.get("starts_at"),
                ends_at=data.get("ends_at"),
                location=data.get("location"),
                slot_minutes=data.get("slot_minutes"),
            )
        except ValidationError as exc:
            for name, errors in exc.error_dict.items():
                self.add_error(name if name in self.fields else None, errors)
            return data
        if data.get("kind") in schedule.TIME_OFF_KINDS and not data.get("cancel_affected"):
            affected = schedule.appointments_overlapping(
                data["doctor"], data["starts_at"], data["ends_at"]
            )
            if affected:
                self.add_error(
                    None, schedule.AppointmentsAffected(affected, may_cancel=True).messages
                )
        return data

    def _post_clean(self) -> None:
        pass  # `during` is built by the service


@admin.register(ScheduleException)
class ScheduleExceptionAdmin(ServiceSavedAdmin):
    """Added and removed through the services; never edited in place."""

    form = ScheduleExceptionForm
    list_display = ("doctor_name", "kind", "during", "location", "reason", "created_at")
    list_filter = ("kind", "location")
    list_select_related = ("doctor__staff_profile", "location")

    @admin.display(description=_("doctor"))
    def doctor_name(self, obj: ScheduleException) -> str:
        return obj.doctor.display_name()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: ScheduleException, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        try:
            saved = schedule.schedule_exception_add(
                by=request.user,
                doctor=data["doctor"],
                kind=data["kind"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                location=data.get("location"),
                slot_minutes=data.get("slot_minutes") or 30,
                reason=data.get("reason", ""),
                cancel_affected=bool(data.get("cancel_affected")),
            )
        except (ValidationError, PermissionDenied) as exc:
            self._service_failed(request, exc)
            return
        self._adopt(obj, saved)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass

    def delete_model(self, request: HttpRequest, obj: ScheduleException) -> None:
        schedule.schedule_exception_remove(by=request.user, exception=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            schedule.schedule_exception_remove(by=request.user, exception=obj)


# --- Capacity ------------------------------------------------------------------------------------


class CapacityOverrideForm(forms.ModelForm):
    doctor = DoctorChoiceField(label=_("doctor"), queryset=User.objects.none())
    starts_at = forms.SplitDateTimeField(label=_("from"), widget=admin.widgets.AdminSplitDateTime)
    ends_at = forms.SplitDateTimeField(label=_("until"), widget=admin.widgets.AdminSplitDateTime)

    class Meta:
        model = CapacityOverride
        fields = ("doctor", "capacity", "reason")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["doctor"].queryset = _doctors()
        self.fields["reason"].required = True

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("starts_at"), data.get("ends_at")
        if start and end and end <= start:
            self.add_error("ends_at", _("The end must be later than the start."))
        if not (data.get("reason") or "").strip():
            self.add_error("reason", _("Give the reason for more than one patient per slot."))
        return data

    def _post_clean(self) -> None:
        pass  # `during` and `created_by` are set by the service


@admin.register(CapacityOverride)
class CapacityOverrideAdmin(ServiceSavedAdmin):
    """Created through `capacity_override_set`, so a reason is always recorded; kept as
    a record afterwards."""

    form = CapacityOverrideForm
    list_display = ("doctor_name", "during", "capacity", "reason", "created_by", "created_at")
    list_select_related = ("doctor__staff_profile", "created_by")

    @admin.display(description=_("doctor"))
    def doctor_name(self, obj: CapacityOverride) -> str:
        return obj.doctor.display_name()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: CapacityOverride, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        try:
            saved = services.capacity_override_set(
                by=request.user,
                doctor=data["doctor"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                capacity=data["capacity"],
                reason=data["reason"],
            )
        except (ValidationError, PermissionDenied) as exc:
            self._service_failed(request, exc)
            return
        self._adopt(obj, saved)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass


# --- Appointments ------------------------------------------------------------------------------


def _run(queryset: QuerySet, action: Any) -> tuple[int, int]:
    ok = bad = 0
    for appointment in queryset:
        try:
            action(appointment)
        except (ValidationError, PermissionDenied):
            bad += 1
        else:
            ok += 1
    return ok, bad


@admin.register(Appointment)
class AppointmentAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "starts", "doctor_name", "location", "status", "source", "patient")
    list_filter = ("status", "source", "location")
    list_select_related = ("doctor__staff_profile", "location", "patient")
    date_hierarchy = "created_at"
    # The patient's note is medical content: not shown in the admin.
    exclude = ("patient_note",)
    actions = ("cancel_for_patient", "mark_no_show")

    def patient_of(self, obj: Appointment) -> Any:
        return obj.patient.user

    @admin.display(description=_("time"))
    def starts(self, obj: Appointment) -> str:
        local = obj.local_start()
        return f"{local:%Y-%m-%d %H:%M} {obj.location.time_zone}"

    @admin.display(description=_("doctor"))
    def doctor_name(self, obj: Appointment) -> str:
        return obj.doctor.display_name()

    @admin.action(description=_("Cancel for the patient (free of charge)"), permissions=["view"])
    def cancel_for_patient(self, request: HttpRequest, queryset: QuerySet) -> None:
        ok, bad = _run(
            queryset,
            lambda a: services.appointment_cancel(
                by=request.user, appointment=a, reason="cancelled by the clinic (admin)"
            ),
        )
        self._report(request, ok, bad)

    @admin.action(description=_("Mark as no-show"), permissions=["view"])
    def mark_no_show(self, request: HttpRequest, queryset: QuerySet) -> None:
        ok, bad = _run(
            queryset,
            lambda a: services.appointment_set_status(
                by=request.user, appointment=a, status=AppointmentStatus.NO_SHOW
            ),
        )
        self._report(request, ok, bad)

    def _report(self, request: HttpRequest, ok: int, bad: int) -> None:
        if ok:
            messages.success(
                request,
                ngettext("%(n)d appointment changed.", "%(n)d appointments changed.", ok)
                % {"n": ok},
            )
        if bad:
            messages.error(
                request,
                ngettext(
                    "%(n)d appointment could not be changed in its current status.",
                    "%(n)d appointments could not be changed in their current status.",
                    bad,
                )
                % {"n": bad},
            )


@admin.register(AppointmentEvent)
class AppointmentEventAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("appointment", "at", "kind", "from_status", "to_status", "by")
    list_filter = ("kind",)
    list_select_related = ("appointment", "by")

    def patient_of(self, obj: AppointmentEvent) -> Any:
        return obj.appointment.patient.user


# --- Reviews -------------------------------------------------------------------------------------


@admin.register(DoctorReview)
class DoctorReviewAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "doctor_name", "rating", "status", "created_at", "moderated_at")
    list_filter = ("status", "rating")
    list_select_related = ("doctor__staff_profile",)
    actions = ("approve", "reject")

    def patient_of(self, obj: DoctorReview) -> Any:
        return obj.appointment.patient.user

    @admin.display(description=_("doctor"))
    def doctor_name(self, obj: DoctorReview) -> str:
        return obj.doctor.display_name()

    def _moderate(self, request: HttpRequest, queryset: QuerySet, approve: bool) -> None:
        count = 0
        for review in queryset:
            services.review_moderate(by=request.user, review=review, approve=approve)
            count += 1
        text = (
            ngettext("%(n)d review approved.", "%(n)d reviews approved.", count)
            if approve
            else ngettext("%(n)d review rejected.", "%(n)d reviews rejected.", count)
        )
        messages.success(request, text % {"n": count})

    @admin.action(description=_("Approve: show on the doctor's profile"), permissions=["view"])
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._moderate(request, queryset, approve=True)

    @admin.action(description=_("Reject"), permissions=["view"])
    def reject(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._moderate(request, queryset, approve=False)


# --- Live queue and waitlist ---------------------------------------------------------------------


@admin.register(QueueTicket)
class QueueTicketAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("service_date", "number", "location", "doctor", "status")
    list_filter = ("status", "location")
    date_hierarchy = "service_date"

    def patient_of(self, obj: QueueTicket) -> Any:
        return obj.patient.user if obj.patient_id else None


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "doctor", "specialty", "consultation_type", "wanted_before", "status")
    list_filter = ("status",)

    def patient_of(self, obj: WaitlistEntry) -> Any:
        return obj.patient.user


@admin.register(WaitlistOffer)
class WaitlistOfferAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "entry", "offered_at", "expires_at", "status")
    list_filter = ("status",)

    def patient_of(self, obj: WaitlistOffer) -> Any:
        return obj.entry.patient.user
